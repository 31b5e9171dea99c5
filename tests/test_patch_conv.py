"""``recipe/patch_conv.py``: the ViT's patch convolution as one matmul gives the convolution's output and
gradients, on both model formats, and leaves every other convolution alone."""
from __future__ import annotations

import pytest
import torch

from ivl3_plugin.recipe.patch_conv import is_patch_conv, patch_convs_as_matmul


@pytest.mark.parametrize("size", [(28, 42), (30, 45)])  # whole patches; a remainder the convolution drops
def test_same_output_and_gradients_as_the_convolution(size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, kernel_size=14, stride=14).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    ref = conv(x)
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, conv.weight, conv.bias))
    assert patch_convs_as_matmul(torch.nn.ModuleDict({"patch": conv})).endswith("matmul: patch")
    out = conv(x)
    assert out.shape == ref.shape == (2, 8, size[0] // 14, size[1] // 14)
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), (x, conv.weight, conv.bias))
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_other_convolutions_are_left_alone():
    convs = [torch.nn.Conv2d(3, 4, 3, stride=1), torch.nn.Conv2d(3, 4, 4, stride=2),
             torch.nn.Conv2d(3, 4, 2, stride=2, padding=1), torch.nn.Conv2d(4, 4, 2, stride=2, groups=2)]
    assert not any(is_patch_conv(c) for c in convs)
    assert "left as it is" in patch_convs_as_matmul(torch.nn.Sequential(*convs))
    assert all(c.forward.__func__ is torch.nn.Conv2d.forward for c in convs)


def _pixels(config_size):
    torch.manual_seed(3)
    return torch.randn(2, 3, config_size, config_size)


def test_hf_internvl_vision_features_unchanged(tiny_model):
    from transformers import InternVLForConditionalGeneration

    model = InternVLForConditionalGeneration.from_pretrained(str(tiny_model)).float().eval()
    pixels = _pixels(model.config.vision_config.image_size[0])
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=pixels)
        line = patch_convs_as_matmul(model)
        out = model.get_image_features(pixel_values=pixels)
    assert "patch_embeddings" in line and line.count(",") == 0  # the one patch convolution, nothing else
    ref, out = (getattr(t, "pooler_output", t) for t in (ref, out))
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert patch_convs_as_matmul(model).startswith("patch embedding: no")  # a second call changes nothing


def test_remote_code_vision_features_unchanged(tmp_path):
    from transformers import AutoModel

    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    folder = build_tiny_remote_model(tmp_path / "remote")
    model = AutoModel.from_pretrained(str(folder), trust_remote_code=True).float().eval()
    pixels = _pixels(model.config.vision_config.image_size)
    with torch.no_grad():
        ref = model.extract_feature(pixels)
        assert "vision_model.embeddings.patch_embedding" in patch_convs_as_matmul(model)
        out = model.extract_feature(pixels)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_patch_matmul_setting_is_checked():
    from ivl3_plugin.recipe.callback_args import field_error
    from ivl3_plugin.recipe.compile import COMPILE_FIELDS

    assert "patch_matmul" in COMPILE_FIELDS
    assert field_error("ivl3_compile", "patch_matmul", False) is None
    assert "true or false" in field_error("ivl3_compile", "patch_matmul", "off")


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, 4, 2, stride=2)
        self.mlp = torch.nn.Module()  # an InternViT-style MLP: fc1, exact GELU, fc2
        self.mlp.act, self.mlp.fc1, self.mlp.fc2 = torch.nn.GELU(), torch.nn.Linear(4, 8), torch.nn.Linear(8, 4)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(2))


@pytest.mark.parametrize("setting", [None, False, True])
def test_ivl3_compile_swaps_the_vit_kernels_unless_turned_off(monkeypatch, setting):
    """On by default (``patch_matmul``, ``gelu_epilogue``); each setting false keeps the module's own forward."""
    import json
    import types

    pytest.importorskip("swift")
    from ivl3_plugin.hosts.swift.callbacks import swift_callback_class
    from ivl3_plugin.recipe.patch_conv import patch_matmul_forward
    from ivl3_plugin.recipe.vit_mlp import gelu_epilogue_forward

    chosen = {} if setting is None else {"patch_matmul": setting, "gelu_epilogue": setting}
    monkeypatch.setenv("IVL3_CALLBACK_ARGS", json.dumps({"ivl3_compile": {"skip_padding": False, **chosen}}))
    monkeypatch.delenv("IVL3_COMPILE", raising=False)
    model = _Toy()
    callback = swift_callback_class()(types.SimpleNamespace(), types.SimpleNamespace(model=model))
    callback.on_train_begin(None, None, None, model=model)
    assert callback.compiled == ["layers: 2 x Linear"]
    assert (getattr(model.patch.forward, "__func__", None) is patch_matmul_forward) is (setting is not False)
    assert (getattr(model.mlp.forward, "__func__", None) is gelu_epilogue_forward) is (setting is not False)
