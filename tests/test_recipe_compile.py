"""Regional torch.compile (``ivl3_plugin.recipe.compile``) and its ms-swift callback ``ivl3_compile``.

The compiled layers must train exactly like the eager ones (same loss, same gradients, under both
kinds of gradient checkpointing), find both stacks of the real InternVL3 class, and refuse what they
cannot do (ZeRO-3, a model with no stack) before the first step.
"""
from __future__ import annotations

import pytest
import torch

from ivl3_plugin.recipe.compile import compile_layers, repeated_layers

LLM_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _lora_model(model_dir, reentrant: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import InternVLForConditionalGeneration

    model = InternVLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    model.requires_grad_(False)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    model.enable_input_require_grads()
    # non-zero B so the adapters change the output and get gradients of their own at step one
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LLM_LINEARS,
                                             init_lora_weights=False))
    return model.train()


def _sample(text_len: int, image_token_id: int):
    g = torch.Generator().manual_seed(text_len)
    ids = torch.randint(image_token_id + 1, 460, (1, 3 + 256 + text_len), generator=g)
    ids[0, 3:3 + 256] = image_token_id  # one 448x448 tile = 256 image tokens
    labels = ids.clone()
    labels[:, :-8] = -100
    return {"input_ids": ids, "labels": labels, "pixel_values": torch.randn(1, 3, 448, 448, generator=g)}


def test_finds_the_vit_and_llm_stacks(tiny_model):
    model = _lora_model(tiny_model, reentrant=True)
    found = {name: (len(layers), type(layers[0]).__name__) for name, layers in repeated_layers(model)}
    assert found == {"base_model.model.model.vision_tower.encoder.layer": (2, "InternVLVisionLayer"),
                     "base_model.model.model.language_model.layers": (2, "Qwen2DecoderLayer")}


def test_a_model_without_a_stack_is_refused():
    with pytest.raises(ValueError, match="no stack of repeated layers found in Sequential"):
        compile_layers(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_compiled_training_matches_eager(tiny_model, reentrant):
    """Three text lengths (one compile, dynamic shapes): same loss and LoRA gradients as eager."""
    torch._dynamo.reset()  # compile afresh here, whatever earlier tests compiled
    eager = _lora_model(tiny_model, reentrant)
    compiled = _lora_model(tiny_model, reentrant)
    compiled.load_state_dict(eager.state_dict())
    done = compile_layers(compiled)
    assert [d.split(":")[0] for d in done] == [name for name, _ in repeated_layers(eager)]
    assert all(layer._compiled_call_impl is not None for _, stack in repeated_layers(compiled) for layer in stack)
    image_token_id = eager.config.image_token_id
    from torch._dynamo.utils import counters

    counters.clear()
    for text_len in (10, 17, 23):
        losses, grads = [], []
        for model in (eager, compiled):
            model.zero_grad(set_to_none=True)
            loss = model(**_sample(text_len, image_token_id)).loss
            loss.backward()
            losses.append(loss.item())
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]))
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
        assert grads[0].abs().max() > 0
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    # the compiled code really ran: graphs for the ViT layer and the decoder layer, and no fallback
    assert counters["stats"]["unique_graphs"] >= 2, dict(counters["stats"])
    assert not counters["graph_break"], dict(counters["graph_break"])


def test_zero3_is_refused_before_training(monkeypatch):
    """What transformers reports as ZeRO-3 is refused; the real DeepSpeed config object where installed."""
    import transformers.integrations as integrations

    from ivl3_plugin.hosts.swift.callbacks import CompileError, check_compilable

    check_compilable()  # no DeepSpeed config: fine
    try:
        import deepspeed  # noqa: F401
    except ImportError:  # CI installs no DeepSpeed: stand in for the flag transformers keeps
        monkeypatch.setattr(integrations, "is_deepspeed_zero3_enabled", lambda: True)
        marker = None
    else:
        marker = integrations.HfDeepSpeedConfig({"zero_optimization": {"stage": 3},
                                                 "train_micro_batch_size_per_gpu": 1})
    with pytest.raises(CompileError, match="ZeRO-3"):
        check_compilable()
    del marker


def test_ivl3_compile_0_leaves_the_model_eager(tiny_model, monkeypatch):
    pytest.importorskip("swift")
    from ivl3_plugin.hosts.swift.callbacks import swift_callback_class

    monkeypatch.setenv("IVL3_COMPILE", "0")
    model = _lora_model(tiny_model, reentrant=True)
    callback = swift_callback_class()(args=None, trainer=None)
    callback.on_train_begin(None, None, None, model=model)
    assert callback.compiled == []
    assert all(layer._compiled_call_impl is None for _, stack in repeated_layers(model) for layer in stack)
    monkeypatch.setenv("IVL3_COMPILE", "1")
    callback.on_train_begin(None, None, None, model=model)
    assert len(callback.compiled) == 2
