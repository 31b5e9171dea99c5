"""The tiny remote-code InternVL3 fixture: the released folder layout, loadable with trust_remote_code."""
from __future__ import annotations

import json

import pytest
import torch

from checkpoint_helpers import image_batch, load_tensors


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    return build_tiny_remote_model(tmp_path_factory.mktemp("fixture") / "remote")


def test_folder_has_the_released_layout(remote):
    config = json.loads((remote / "config.json").read_text())
    assert config["architectures"] == ["InternVLChatModel"] and config["model_type"] == "internvl_chat"
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}
    for ref in config["auto_map"].values():
        assert (remote / (ref.split(".")[0] + ".py")).is_file()
    assert config["llm_config"]["architectures"] == ["Qwen2ForCausalLM"]
    assert config["llm_config"]["rope_theta"] == 1e6
    for key in ("downsample_ratio", "template", "select_layer", "ps_version", "force_image_size"):
        assert key in config
    names = set(load_tensors(remote))
    assert "vision_model.encoder.layers.0.attn.qkv.weight" in names
    assert {"mlp1.0.weight", "mlp1.1.weight", "mlp1.3.weight"} <= names
    assert "language_model.model.embed_tokens.weight" in names and "language_model.lm_head.weight" in names
    for code in remote.glob("*.py"):
        assert "timm" not in _imported_modules(code.read_text()), f"{code.name} must not need timm"


def _imported_modules(source: str) -> set:
    import ast

    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_loads_with_automodel_trust_remote_code_and_runs(remote):
    from transformers import AutoModel

    from ivl3_plugin.checkpoint.remote_load import img_context_token_id

    model, info = AutoModel.from_pretrained(str(remote), trust_remote_code=True, output_loading_info=True)
    assert type(model).__name__ == "InternVLChatModel"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    stored = load_tensors(remote)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored[name]), f"{name} not loaded"
    model.img_context_token_id = img_context_token_id(remote)
    pixel_values, ids = image_batch(model.img_context_token_id)
    with torch.no_grad():
        logits = model(pixel_values=pixel_values, input_ids=ids).logits
        features = model.extract_feature(pixel_values)
        out = model.generate(pixel_values=pixel_values, input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=3, do_sample=False)
    assert logits.shape == (1, ids.shape[1], model.language_model.config.vocab_size)
    assert features.shape == (2, 256, model.language_model.config.hidden_size)
    assert out.shape == (1, 3)
    # the image tokens matter: other pixels, other logits
    with torch.no_grad():
        other = model(pixel_values=pixel_values.flip(0), input_ids=ids).logits
    assert not torch.allclose(logits, other)


def test_release_era_class_without_post_init_fails_in_transformers_5_and_the_repair_loads_it(tmp_path):
    from transformers import AutoModel

    from ivl3_plugin.checkpoint.remote_load import load_remote_model
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    folder = build_tiny_remote_model(tmp_path / "release-era", post_init=False)
    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        AutoModel.from_pretrained(str(folder), trust_remote_code=True)
    model = load_remote_model(folder)
    assert type(model).__name__ == "InternVLChatModel"
    stored = load_tensors(folder)
    assert sorted(model.state_dict()) == sorted(stored)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored[name]), name
    assert model.img_context_token_id == 5


def test_prepare_remote_class_repairs_what_a_later_auto_load_builds(tmp_path):
    """What a host does before its own loader (ms-swift: AutoModelForCausalLM.from_pretrained) runs."""
    from transformers import AutoModelForCausalLM

    from ivl3_plugin.checkpoint.remote_load import prepare_remote_class
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    folder = build_tiny_remote_model(tmp_path / "release-era", post_init=False, seed=3)
    cls = prepare_remote_class(folder)
    model = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True)
    assert isinstance(model, cls)
    assert torch.equal(model.mlp1[1].weight, load_tensors(folder)["mlp1.1.weight"])


def test_remote_spec_matches_the_fixture_model_for_both_vision_towers(tmp_path):
    """The converter's own name/shape spec of the remote format, checked against real modules."""
    from ivl3_plugin.checkpoint.configs import describe_remote
    from ivl3_plugin.checkpoint.mapping import remote_spec
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    for vision in ("300m", "6b"):
        folder = build_tiny_remote_model(tmp_path / vision, vision=vision)
        desc = describe_remote(json.loads((folder / "config.json").read_text()), "fixture")
        stored = {k: tuple(v.shape) for k, v in load_tensors(folder).items()}
        assert remote_spec(desc) == stored
        if vision == "6b":
            assert "vision_model.encoder.layers.0.attn.q_norm.weight" in stored
            assert "vision_model.encoder.layers.0.attn.qkv.bias" not in stored
            assert "vision_model.encoder.layers.0.norm1.bias" not in stored  # RMSNorm
