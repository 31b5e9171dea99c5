"""Partial gradient checkpointing (``ivl3_recompute``): only the LLM's first k layers recompute, training is
unchanged, and the layer count travels as a callback run setting (``IVL3_CALLBACK_ARGS``)."""
from __future__ import annotations

import json

import pytest

from ivl3_plugin.recipe.callback_args import callback_args, set_callback_args
from ivl3_plugin.recipe.config import RecipeError, apply_overrides, parse_recipe, validate

torch = pytest.importorskip("torch")

RECIPE = """
model: m
template: ivl3_video
tuner_type: full
dataset: [d]
gradient_checkpointing: true
callbacks: [ivl3_compile]
"""


def tiny_llm_model(layers: int = 4):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                      num_hidden_layers=layers, vocab_size=64)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg)


def loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("keep", [0, 1, 3, 4])
def test_only_the_first_k_layers_recompute_and_training_is_unchanged(keep):
    from ivl3_plugin.recipe.compile import checkpoint_first

    ids = torch.randint(0, 64, (2, 12))
    reference = tiny_llm_model()
    reference.train()
    ref_loss, ref_grads = loss_and_grads(reference, ids)

    model = tiny_llm_model()
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    line = checkpoint_first(model, keep)
    assert f"first {keep} of 4 layers" in line
    calls = [0] * 4
    for i, layer in enumerate(model.model.layers):
        layer.register_forward_pre_hook(lambda m, a, i=i: calls.__setitem__(i, calls[i] + 1))
    loss, grads = loss_and_grads(model, ids)
    assert calls == [2] * keep + [1] * (4 - keep)  # a checkpointed layer runs its forward again in backward
    assert torch.allclose(loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        assert torch.allclose(g, ref_grads[name], atol=1e-6, rtol=1e-5), name


def test_recompute_needs_checkpointing_on_and_a_whole_number():
    from ivl3_plugin.recipe.compile import checkpoint_first

    model = tiny_llm_model()
    with pytest.raises(ValueError, match="gradient_checkpointing true"):
        checkpoint_first(model, 2)
    model.gradient_checkpointing_enable()
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="whole number"):
            checkpoint_first(model, bad)


def test_callback_settings_travel_keyed_by_callback_name():
    recipe = parse_recipe(RECIPE)
    new = apply_overrides(recipe, {"callbacks": ["ivl3_compile", "ivl3_recompute"],
                                   "callback.ivl3_recompute.layers": 13})
    assert json.loads(new.args["ENV"]["IVL3_CALLBACK_ARGS"]) == {"ivl3_recompute": {"layers": 13}}
    assert callback_args(new.args) == {"ivl3_recompute": {"layers": 13}}
    assert validate(new) == []
    set_callback_args(new.args, "ivl3_recompute", None)
    assert "ENV" not in new.args  # nothing left: the block goes
    with pytest.raises(RecipeError, match="callback.NAME.FIELD"):
        apply_overrides(recipe, {"callback.ivl3_recompute": 3})


@pytest.mark.parametrize("overrides, words", [
    ({"callback.ivl3_recompute.layers": 13}, "does not list it"),
    ({"callbacks": ["ivl3_recompute"]}, "without its layer count"),
    ({"callbacks": ["ivl3_recompute"], "callback.ivl3_recompute.layers": -2}, "whole number >= 0"),
    ({"callbacks": ["ivl3_recompute"], "callback.ivl3_recompute.depth": 2}, "no setting 'depth'"),
    ({"callback.mine.layers": 2}, "no run settings for callback 'mine'"),
    ({"callback.ivl3_compile.attention": "fastest"}, "must be one of default, cudnn"),
    ({"callbacks": ["ivl3_recompute"], "callback.ivl3_recompute.layers": 3, "gradient_checkpointing": False},
     "'gradient_checkpointing' is false"),
    ({"ENV.IVL3_CALLBACK_ARGS": "{not json"}, "not valid JSON"),
])
def test_bad_callback_settings_are_refused_naming_the_field(overrides, words):
    problems = validate(apply_overrides(parse_recipe(RECIPE), overrides))
    assert any(words in p for p in problems), problems


def test_the_training_process_reads_its_settings_through_the_declared_variable(monkeypatch):
    pytest.importorskip("swift")
    from ivl3_plugin.hosts.swift.callbacks import CompileError, run_settings

    monkeypatch.setenv("IVL3_CALLBACK_ARGS", json.dumps({"ivl3_recompute": {"layers": 5}}))
    assert run_settings("ivl3_recompute") == {"layers": 5}
    assert run_settings("ivl3_compile") == {}
    monkeypatch.setenv("IVL3_CALLBACK_ARGS", json.dumps({"ivl3_recompute": {"layers": "five"}}))
    with pytest.raises(CompileError, match="IVL3_CALLBACK_ARGS"):
        run_settings("ivl3_recompute")
