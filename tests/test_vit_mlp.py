"""``recipe/vit_mlp.py``: the frozen ViT's MLP through one matmul-with-GELU op gives the MLP's output, on both
model formats and under ``torch.compile``; anything that needs a gradient keeps the module's own forward."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ivl3_plugin.recipe.vit_mlp import _linear_gelu_op, fuse_vit_mlp_gelu, is_gelu_mlp


class _MLP(torch.nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act, self.fc1, self.fc2 = act, torch.nn.Linear(8, 32), torch.nn.Linear(32, 8)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _calls_op(monkeypatch) -> list:
    """Record the op's calls (the real op still runs)."""
    import ivl3_plugin.recipe.vit_mlp as vit_mlp

    calls, real = [], vit_mlp._linear_gelu_op()

    def spy(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(vit_mlp, "_linear_gelu_op", lambda: spy)
    return calls


def test_the_op_is_linear_then_gelu_and_compiles():
    torch.manual_seed(0)
    x, w, b = (torch.randn(*shape, dtype=torch.float64) for shape in ((2, 5, 8), (16, 8), (16,)))
    op = _linear_gelu_op()
    want = F.gelu(F.linear(x, w, b))
    assert torch.allclose(op(x, w, b), want, rtol=1e-12, atol=1e-12)  # the CPU's GELU is the exact one
    assert torch.allclose(torch.compile(lambda t: op(t, w, b) * 2)(x), 2 * want, rtol=1e-12, atol=1e-12)


def test_frozen_mlp_uses_the_op_and_gives_the_same_output(monkeypatch):
    torch.manual_seed(1)
    mlp = _MLP(torch.nn.GELU()).double().requires_grad_(False)
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    ref = mlp(x)
    assert fuse_vit_mlp_gelu(torch.nn.ModuleList([mlp])).endswith("(1 MLPs)")
    calls = _calls_op(monkeypatch)
    assert torch.allclose(mlp(x), ref, rtol=1e-12, atol=1e-12)
    assert calls == [(3, 4, 8)]
    assert fuse_vit_mlp_gelu(mlp).startswith("ViT MLP: no")  # a second call changes nothing


@pytest.mark.parametrize("needs_grad", ["weights", "input"])
def test_anything_needing_a_gradient_keeps_the_module_forward(monkeypatch, needs_grad):
    torch.manual_seed(2)
    mlp = _MLP(torch.nn.GELU()).double().requires_grad_(needs_grad == "weights")
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=needs_grad == "input")
    ref = mlp(x)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x] if needs_grad == "input" else list(mlp.parameters()))
    fuse_vit_mlp_gelu(mlp)
    calls = _calls_op(monkeypatch)
    out = mlp(x)
    grads = torch.autograd.grad(out.square().sum(), [x] if needs_grad == "input" else list(mlp.parameters()))
    assert calls == []
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the same module, frozen for the call: the op
        mlp(x)
    assert calls == [(3, 8)]


def test_only_exact_gelu_mlps_are_taken():
    from transformers.activations import ACT2FN

    assert is_gelu_mlp(_MLP(torch.nn.GELU())) and is_gelu_mlp(_MLP(ACT2FN["gelu"]))
    for act in (torch.nn.GELU(approximate="tanh"), ACT2FN["gelu_new"], torch.nn.SiLU(), ACT2FN["quick_gelu"]):
        assert not is_gelu_mlp(_MLP(act))
    no_bias = _MLP(torch.nn.GELU())
    no_bias.fc1 = torch.nn.Linear(8, 32, bias=False)
    assert not is_gelu_mlp(no_bias)


def test_hf_internvl_vision_features_unchanged(tiny_model, monkeypatch):
    from transformers import InternVLForConditionalGeneration

    model = InternVLForConditionalGeneration.from_pretrained(str(tiny_model)).float().eval().requires_grad_(False)
    size = model.config.vision_config.image_size[0]
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    ref = model.get_image_features(pixel_values=pixels)
    layers = model.config.vision_config.num_hidden_layers
    assert fuse_vit_mlp_gelu(model).endswith(f"({layers} MLPs)")  # the ViT's, not the LLM's SwiGLU or the aligner
    calls = _calls_op(monkeypatch)
    out = model.get_image_features(pixel_values=pixels)
    ref, out = (getattr(t, "pooler_output", t) for t in (ref, out))
    assert len(calls) == layers
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_remote_code_vision_features_unchanged(tmp_path, monkeypatch):
    from transformers import AutoModel

    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    model = AutoModel.from_pretrained(str(build_tiny_remote_model(tmp_path / "remote")), trust_remote_code=True)
    model = model.float().eval().requires_grad_(False)
    pixels = torch.randn(2, 3, model.config.vision_config.image_size, model.config.vision_config.image_size,
                         generator=torch.Generator().manual_seed(4))
    ref = model.extract_feature(pixels)
    layers = model.config.vision_config.num_hidden_layers
    assert fuse_vit_mlp_gelu(model).endswith(f"({layers} MLPs)")
    calls = _calls_op(monkeypatch)
    out = model.extract_feature(pixels)
    assert len(calls) == layers
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_gelu_epilogue_setting_is_checked():
    from ivl3_plugin.recipe.callback_args import field_error
    from ivl3_plugin.recipe.compile import COMPILE_FIELDS

    assert "gelu_epilogue" in COMPILE_FIELDS
    assert field_error("ivl3_compile", "gelu_epilogue", True) is None
    assert "true or false" in field_error("ivl3_compile", "gelu_epilogue", 1)


