"""Length-grouped micro-batches (``ivl3_plugin.recipe.length_group``): every sample exactly once per
epoch, equal shares per rank, another grouping each epoch, and far less padding than random batches."""
from __future__ import annotations

import random

import pytest

from ivl3_plugin.recipe.length_group import grouped_micro_steps, padding_fraction, rank_batches


def mixed_lengths(n: int, seed: int = 1) -> list:
    """Token lengths of 8-32-frame clips (256 tokens a frame) with 60-400 text tokens."""
    rng = random.Random(seed)
    return [256 * rng.randint(8, 32) + rng.randint(60, 400) for _ in range(n)]


@pytest.mark.parametrize("n,batch,world,window", [(200, 4, 1, 64), (203, 4, 1, 8), (203, 2, 2, 4), (97, 3, 4, 2),
                                                  (5, 8, 1, 64)])
def test_every_sample_once_per_epoch(n, batch, world, window):
    lengths = mixed_lengths(n)
    steps = grouped_micro_steps(lengths, batch, seed=3, epoch=0, world_size=world, window=window)
    seen = [i for r in range(world) for b in rank_batches(steps, r, world) for i in b]
    kept = n - n % world if world > 1 else n
    assert len(seen) == kept and len(set(seen)) == kept  # no repeats, only the world-size remainder dropped
    assert all(len(b) <= batch for r in range(world) for b in rank_batches(steps, r, world))
    for s in steps:  # each global micro-step gives every rank the same number of samples
        assert len({len(s[r::world]) for r in range(world)}) == 1


def test_drop_last_keeps_full_batches_only():
    steps = grouped_micro_steps(mixed_lengths(203), 4, seed=0, drop_last=True)
    assert all(len(s) == 4 for s in steps) and len(steps) == 203 // 4


def test_grouping_cuts_padding_against_random_batches():
    lengths = mixed_lengths(512)
    order = list(range(512))
    random.Random(0).shuffle(order)
    random_batches = [order[i:i + 4] for i in range(0, 512, 4)]
    grouped = rank_batches(grouped_micro_steps(lengths, 4, seed=0))
    before, after = padding_fraction(lengths, random_batches), padding_fraction(lengths, grouped)
    assert before > 0.15  # random batches of 8-32-frame clips are heavily padded ...
    assert after < before / 5  # ... grouped ones almost not


def test_epochs_and_seeds_regroup_but_are_reproducible():
    lengths = mixed_lengths(256)
    a = grouped_micro_steps(lengths, 4, seed=0, epoch=0)
    assert a == grouped_micro_steps(lengths, 4, seed=0, epoch=0)
    assert a != grouped_micro_steps(lengths, 4, seed=0, epoch=1)
    assert a != grouped_micro_steps(lengths, 4, seed=1, epoch=0)
    # the order mixes long and short batches instead of running longest-first
    longest = [max(lengths[i] for i in s) for s in a]
    assert longest != sorted(longest, reverse=True)


def test_bad_arguments():
    with pytest.raises(ValueError):
        grouped_micro_steps([1, 2], 0)
    with pytest.raises(ValueError):
        rank_batches([[0, 1]], rank=2, world_size=2)


RECIPE = """
model: m
template: ivl3_video
tuner_type: full
dataset: [d]
per_device_train_batch_size: 2
gradient_accumulation_steps: 1
"""


def test_recipe_option_and_its_window_setting_are_validated():
    from ivl3_plugin.recipe.config import apply_overrides, parse_recipe, validate

    ok = apply_overrides(parse_recipe(RECIPE), {"callbacks": ["ivl3_length_group"],
                                                "callback.ivl3_length_group.window": 8})
    assert validate(ok) == []
    for value, words in ((0, "whole number >= 1"), (2.5, "whole number >= 1"), (True, "whole number >= 1")):
        bad = apply_overrides(parse_recipe(RECIPE), {"callbacks": ["ivl3_length_group"],
                                                     "callback.ivl3_length_group.window": value})
        assert any(words in p for p in validate(bad)), validate(bad)
    bad = apply_overrides(parse_recipe(RECIPE), {"callbacks": ["ivl3_length_group"],
                                                 "callback.ivl3_length_group.span": 8})
    assert any("no setting 'span'" in p for p in validate(bad))


def test_plan_option_adds_the_callback_only_where_a_micro_batch_holds_several_samples():
    from ivl3_plugin.recipe.plan import PlanRequest, make_plan
    from ivl3_plugin.recipe.plan_apply import apply_plan, planned_overrides

    base = dict(model="1B", gpus_per_node=1, gpu_memory_gib=80.0, frames=32, tuner="lora", global_batch=16,
                checkpointing="auto", objective="fastest")
    grouped = make_plan(PlanRequest(**base, max_micro_batch=None, length_group=True))
    assert grouped.micro_batch > 1
    args = {"callbacks": []}
    apply_plan(args, grouped)
    assert "ivl3_length_group" in args["callbacks"]
    assert any("ivl3_length_group" in w for w in planned_overrides(grouped, {"callbacks": []}))
    for request in (PlanRequest(**base, max_micro_batch=1, length_group=True),  # nothing to group
                    PlanRequest(**base, max_micro_batch=None)):  # not asked for
        args = {"callbacks": []}
        apply_plan(args, make_plan(request))
        assert "ivl3_length_group" not in (args.get("callbacks") or [])
    args = {"callbacks": ["ivl3_length_group"]}  # a recipe that lists it keeps it under --plan
    apply_plan(args, make_plan(PlanRequest(**base, max_micro_batch=1)))
    assert "ivl3_length_group" in args["callbacks"]
