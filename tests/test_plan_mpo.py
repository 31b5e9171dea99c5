"""``stage="mpo"`` in the memory model and planner: pairs, reference forward, reference copy -- term by term."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ivl3_plugin.recipe.arch import ARCHS
from ivl3_plugin.recipe.memory import BF16, FP32, TrainSetup, estimate
from ivl3_plugin.recipe.plan import PlanRequest, make_plan
from ivl3_plugin.recipe.speed import step_time


@pytest.mark.parametrize("tuner, zero, world", [("lora", 0, 1), ("full", 1, 8), ("full", 3, 8)])
def test_mpo_adds_exactly_the_pair_and_reference_terms(tuner, zero, world):
    arch = ARCHS["8B"]
    sft = TrainSetup(tuner=tuner, zero=zero, world=world, micro_batch=2, frames=16, label_tokens=128)
    mpo = replace(sft, stage="mpo")
    a, b = estimate(arch, sft), estimate(arch, mpo)
    # two sequences per sample: the policy's answer logits double
    assert b.logits == pytest.approx(2 * a.logits)
    # activations: the LLM stack holds both sequences (the ViT's projector input does not double)
    doubled = estimate(arch, replace(sft, micro_batch=4)).activations
    assert a.activations < b.activations <= doubled
    rows = 2 * 2 * (128 + 1)  # micro-batch x sequences x (answer tokens + 1)
    ref_logits = rows * arch.text.vocab * (BF16 + FP32)
    copy = BF16 * sum(arch.params().values()) / (world if zero == 3 else 1) if tuner == "full" else 0.0
    assert b.reference == pytest.approx(ref_logits + copy)
    # nothing else changes: weights, vision tower, gradients, optimizer states, buffers
    for key in ("weights", "vision_tower", "gradients", "optimizer", "buffers", "step_transient"):
        assert getattr(b, key) == getattr(a, key), key
    # the peak: the copy sits beside the weights; the reference logits come on top of the policy's activations
    fixed = a.weights + a.vision_tower + a.gradients + a.optimizer + a.buffers
    assert a.total == pytest.approx(fixed + max(a.activations + a.logits, a.step_transient))
    assert b.total == pytest.approx(fixed + copy + max(b.activations + b.logits + ref_logits, b.step_transient))
    assert b.total > a.total + copy


def test_lora_reference_is_the_base_model_full_keeps_a_copy():
    arch = ARCHS["8B"]
    lora = estimate(arch, TrainSetup(tuner="lora", stage="mpo"))
    full = estimate(arch, TrainSetup(tuner="full", zero=1, world=8, stage="mpo"))
    logits_only = 2 * (128 + 1) * arch.text.vocab * (BF16 + FP32)
    assert lora.reference == pytest.approx(logits_only) and "reference" not in lora.notes
    assert full.reference - logits_only == pytest.approx(BF16 * arch.total_params())  # 16 GB for 8B
    assert "reference" in full.notes


def test_mpo_is_slower_per_sample_and_not_compiled():
    arch = ARCHS["8B"]
    sft = step_time(arch, TrainSetup(tuner="lora"), 8)
    mpo = step_time(arch, TrainSetup(tuner="lora", stage="mpo"), 8)
    assert sft.compiled and not mpo.compiled
    assert 2.0 < sft.samples_per_s / mpo.samples_per_s < 4.5  # 2 sequences, a reference forward, eager


def test_plan_for_mpo_needs_more_and_names_the_mpo_recipe():
    base = {"model": "8B", "gpus_per_node": 8, "gpu_memory_gib": 80, "tuner": "full", "max_micro_batch": 1,
            "stages": [(1, False)]}
    sft, mpo = make_plan(PlanRequest(**base)), make_plan(PlanRequest(**base, stage="mpo"))
    assert mpo.memory.total > sft.memory.total + 14 * 2 ** 30  # at least the 8B reference copy
    assert (sft.recipe_name, mpo.recipe_name) == ("internvl3-8b-full", "internvl3-8b-mpo-full")
    lora = make_plan(PlanRequest(model="8B", gpus_per_node=2, gpu_memory_gib=80, tuner="lora", stage="mpo"))
    assert lora.recipe_name == "internvl3-8b-mpo"
    with pytest.raises(ValueError, match="stage"):
        make_plan(PlanRequest(stage="ppo"))


def test_cli_plan_stage_mpo(capsys):
    from ivl3_plugin.cli import main

    assert main(["plan", "8B", "--gpus", "2", "--tuner", "lora", "--stage", "mpo", "--json"]) == 0
    mpo = json.loads(capsys.readouterr().out)
    assert main(["plan", "8B", "--gpus", "2", "--tuner", "lora", "--json"]) == 0
    sft = json.loads(capsys.readouterr().out)
    assert mpo["stage"] == "mpo" and mpo["recipe"] == "internvl3-8b-mpo" and mpo["run"].startswith(
        "ivl3 train internvl3-8b-mpo ")
    assert mpo["memory_gib"]["reference"] > 0 == sft["memory_gib"]["reference"]
    assert mpo["predicted_samples_per_s"] < sft["predicted_samples_per_s"]
    assert main(["plan", "8B", "--gpus", "1", "--stage", "mpo", "--tuner", "full"]) == 0
    assert "reference model (copy + its logits)" in capsys.readouterr().out


def test_train_plan_reads_the_stage_from_the_recipe():
    from ivl3_plugin.recipe.config import load_recipe
    from ivl3_plugin.recipe.plan_apply import plan_request_for
    from ivl3_plugin.resources import recipes_dir

    assert plan_request_for(load_recipe(recipes_dir() / "internvl3-8b-mpo.yaml"), 2, 1, 80).stage == "mpo"
    assert plan_request_for(load_recipe(recipes_dir() / "internvl3-8b-lora.yaml"), 2, 1, 80).stage == "sft"
