"""ivl3 checkpoint: remote <-> hf conversion is complete, bit-exact and behaviour-preserving."""
from __future__ import annotations

import json

import pytest
import torch

from checkpoint_helpers import assert_bit_identical, config, image_batch, leftovers, load_tensors

#: Logits of the remote model (its own eager attention, fused qkv) against transformers' -hf model
#: (separate q/k/v, SDPA) in float32: same weights, different kernels, so equal to this absolute tolerance.
LOGITS_ATOL = 1e-5


@pytest.fixture(scope="module", params=["300m", "6b"])
def converted(request, tmp_path_factory):
    """remote -> hf -> remote and hf -> remote -> hf for one vision tower (InternViT-300M or -6B style)."""
    from ivl3_plugin.checkpoint import to_hf, to_remote
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    root = tmp_path_factory.mktemp(f"convert-{request.param}")
    remote = build_tiny_remote_model(root / "remote", vision=request.param)
    hf = to_hf(remote, root / "hf")
    remote2 = to_remote(hf, root / "remote2", code_from=remote)
    hf2 = to_hf(remote2, root / "hf2", max_shard_size="300KB")  # sharded, with an index
    return {"remote": remote, "hf": hf, "remote2": remote2, "hf2": hf2, "vision": request.param}


def test_remote_to_hf_to_remote_is_bit_identical(converted):
    assert_bit_identical(load_tensors(converted["remote"]), load_tensors(converted["remote2"]))


def test_hf_to_remote_to_hf_is_bit_identical(converted):
    assert_bit_identical(load_tensors(converted["hf"]), load_tensors(converted["hf2"]))


def test_sharded_output_has_an_index_naming_every_tensor_once(converted):
    folder = converted["hf2"]
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) > 1 and not (folder / "model.safetensors").exists()
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    assert sorted(index["weight_map"]) == sorted(load_tensors(folder))
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in load_tensors(folder).values())


def test_hf_output_is_what_transformers_save_pretrained_writes_and_loads_completely(converted, tmp_path):
    from transformers import InternVLForConditionalGeneration

    model, info = InternVLForConditionalGeneration.from_pretrained(str(converted["hf2"]), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    stored = load_tensors(converted["hf"])
    model.save_pretrained(tmp_path / "resaved")
    resaved = load_tensors(tmp_path / "resaved")
    assert_bit_identical(stored, resaved)  # same names (transformers 5's saved layout), same bytes


def test_logits_of_source_and_converted_model_are_equal(converted):
    from transformers import InternVLForConditionalGeneration

    from ivl3_plugin.checkpoint.remote_load import load_remote_model

    remote = load_remote_model(converted["remote"]).eval()
    hf = InternVLForConditionalGeneration.from_pretrained(str(converted["hf"])).eval()
    assert hf.config.image_token_id == remote.img_context_token_id
    pixel_values, ids = image_batch(remote.img_context_token_id)
    with torch.no_grad():
        a = remote(pixel_values=pixel_values, input_ids=ids).logits
        b = hf(pixel_values=pixel_values, input_ids=ids).logits
        text_only = hf(input_ids=ids[:, :3]).logits
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=LOGITS_ATOL, rtol=0)
    torch.testing.assert_close(a[:, :3], text_only, atol=LOGITS_ATOL, rtol=0)
    remote2 = load_remote_model(converted["remote2"]).eval()
    with torch.no_grad():
        assert torch.equal(remote2(pixel_values=pixel_values, input_ids=ids).logits, a)  # same code, same bytes


def test_hf_configs_processors_and_4x_fields(converted):
    from transformers import AutoProcessor

    hf = config(converted["hf"])
    src = config(converted["remote"])
    text = hf["text_config"]
    assert text["rope_parameters"]["rope_theta"] == text["rope_theta"] == src["llm_config"]["rope_theta"]
    assert text["rope_scaling"] is None and text["torch_dtype"] == "float32" == hf["torch_dtype"]
    assert hf["tie_word_embeddings"] is text["tie_word_embeddings"] is False
    assert hf["image_seq_length"] == 256 and hf["vision_feature_layer"] == src["select_layer"]
    v = hf["vision_config"]
    assert (v["use_qk_norm"], v["norm_type"], v["attention_bias"]) == (
        src["vision_config"]["qk_normalization"], src["vision_config"]["norm_type"], src["vision_config"]["qkv_bias"])
    processor = AutoProcessor.from_pretrained(str(converted["hf"]))
    for proc in (processor.image_processor, processor.video_processor):
        assert (proc.size.height, proc.size.width) == (448, 448)
        assert list(proc.image_mean) == [0.485, 0.456, 0.406] and list(proc.image_std) == [0.229, 0.224, 0.225]
    assert processor.image_token == "<IMG_CONTEXT>" and processor.video_token == "<video>"
    assert processor.image_token_id == hf["image_token_id"]
    prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
                                           add_generation_prompt=True)
    assert "<IMG_CONTEXT>" in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_remote_output_config_has_4x_fields_and_code(converted):
    out = config(converted["remote2"])
    src = config(converted["remote"])
    assert out["llm_config"]["rope_theta"] == 1e6 and out["llm_config"]["torch_dtype"] == "float32"
    assert out["llm_config"]["architectures"] == ["Qwen2ForCausalLM"]
    assert out["vision_config"] == src["vision_config"]
    for key in ("template", "ps_version", "downsample_ratio", "force_image_size", "select_layer", "auto_map"):
        assert out[key] == src[key], key
    for code in converted["remote"].glob("*.py"):
        assert (converted["remote2"] / code.name).read_text() == code.read_text()


def test_tied_hf_model_round_trips_through_remote(tmp_path, tiny_model):
    """The repo's tiny -hf model ties lm_head to the embedding: the file holds it once, in both formats."""
    from ivl3_plugin.checkpoint import to_hf, to_remote
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    code = build_tiny_remote_model(tmp_path / "code")
    remote = to_remote(tiny_model, tmp_path / "remote", code_from=code)
    names = set(load_tensors(remote))
    assert "language_model.lm_head.weight" not in names and config(remote)["llm_config"]["tie_word_embeddings"]
    back = to_hf(remote, tmp_path / "back")
    assert_bit_identical(load_tensors(tiny_model), load_tensors(back))
    # the fixed rope_theta: transformers 5 alone wrote only rope_parameters
    assert "rope_theta" not in config(tiny_model)["text_config"]
    assert config(back)["text_config"]["rope_theta"] == config(tiny_model)["text_config"]["rope_parameters"]["rope_theta"]
    from ivl3_plugin.checkpoint.remote_load import load_remote_model

    model = load_remote_model(remote)
    assert model.language_model.lm_head.weight.data_ptr() == model.language_model.model.embed_tokens.weight.data_ptr()


def test_same_format_rewrite_fixes_a_384px_clip_video_processor(converted, tmp_path):
    """transformers' InternVL video processor defaults (384 px, CLIP mean/std) are rewritten to 448/ImageNet."""
    import shutil

    from transformers import AutoProcessor

    from ivl3_plugin.checkpoint import describe, to_hf

    bad = tmp_path / "bad"
    shutil.copytree(converted["hf"], bad)
    data = json.loads((bad / "processor_config.json").read_text())
    data["video_processor"].update(size={"height": 384, "width": 384}, image_mean=[0.4815, 0.4578, 0.4082],
                                   image_std=[0.2686, 0.2613, 0.2758])
    (bad / "processor_config.json").write_text(json.dumps(data))
    (bad / "video_preprocessor_config.json").unlink()
    assert AutoProcessor.from_pretrained(str(bad)).video_processor.size.height == 384
    assert any("video processor at 384 px" in p for p in describe(bad)["problems"])
    fixed = to_hf(bad, tmp_path / "fixed")
    video = AutoProcessor.from_pretrained(str(fixed)).video_processor
    assert video.size.height == 448 and list(video.image_mean) == [0.485, 0.456, 0.406]
    assert describe(fixed)["problems"] == []
    assert_bit_identical(load_tensors(bad), load_tensors(fixed))


def test_overwrite_replaces_the_destination_atomically(converted, tmp_path):
    from ivl3_plugin.checkpoint import to_hf

    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.txt").write_text("old")
    to_hf(converted["remote"], dst, overwrite=True)
    assert not (dst / "stale.txt").exists() and (dst / "model.safetensors").is_file()
    assert leftovers(tmp_path) == []
    assert_bit_identical(load_tensors(dst), load_tensors(converted["hf"]))


def test_info_describes_both_formats(converted, tmp_path):
    from ivl3_plugin.checkpoint import describe
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    remote = describe(converted["remote"])
    assert remote["format"] == "remote" and remote["problems"] == []
    assert remote["language_model"]["rope_theta"] == 1e6
    assert remote["weights"]["tensors"] == len(load_tensors(converted["remote"]))
    hf = describe(converted["hf2"])
    assert hf["format"] == "hf" and hf["weights"]["sharded"] and hf["problems"] == []
    assert hf["weights"]["parameters"] == remote["weights"]["parameters"]
    old = describe(build_tiny_remote_model(tmp_path / "old", post_init=False))
    assert any("post_init" in p for p in old["problems"])


def test_hf_source_in_the_in_memory_layout_and_with_a_tied_duplicate(tiny_model, tmp_path):
    """-hf files written as model.language_model.* / lm_head.* read the same; a tied lm_head copy is dropped,
    a differing one refused."""
    from safetensors.torch import save_file

    from ivl3_plugin.checkpoint import CheckpointError, to_remote
    from ivl3_plugin.checkpoint.mapping import canonical_hf_name
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    code = build_tiny_remote_model(tmp_path / "code")
    saved = load_tensors(tiny_model)
    runtime = {}
    for name, tensor in saved.items():
        for old, new in (("language_model.model.", "model.language_model."), ("vision_tower.", "model.vision_tower."),
                         ("multi_modal_projector.", "model.multi_modal_projector.")):
            if name.startswith(old):
                name = new + name[len(old):]
        runtime[name] = tensor
    runtime["lm_head.weight"] = runtime["model.language_model.embed_tokens.weight"].clone()  # tied duplicate
    assert {canonical_hf_name(n) for n in runtime} == set(saved) | {"language_model.lm_head.weight"}
    src = tmp_path / "runtime"
    import shutil

    shutil.copytree(tiny_model, src)
    save_file(runtime, str(src / "model.safetensors"))
    out = to_remote(src, tmp_path / "from-runtime", code_from=code)
    reference = to_remote(tiny_model, tmp_path / "from-saved", code_from=code)
    assert_bit_identical(load_tensors(out), load_tensors(reference))
    runtime["lm_head.weight"] = runtime["lm_head.weight"] + 1
    save_file(runtime, str(src / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        to_remote(src, tmp_path / "refused", code_from=code)
    assert not (tmp_path / "refused").exists()


REAL_SIZES = {
    # (vision hidden, heads, layers, intermediate, 6B style), (LLM hidden, intermediate, layers, heads, kv heads)
    "InternVL3-1B": ((1024, 16, 24, 4096, False), (896, 4864, 24, 14, 2)),
    "InternVL3-78B": ((3200, 25, 45, 12800, True), (8192, 29568, 80, 64, 8)),
}


@pytest.mark.parametrize("size", sorted(REAL_SIZES))
def test_mapping_is_complete_at_real_sizes_without_weights(size):
    """The released InternVL3-1B / -78B layouts (InternViT-300M / -6B, Qwen2.5-0.5B / -72B) map completely both
    ways: names and shapes from the configs only (meta device), no tensor data."""
    from ivl3_plugin.checkpoint.configs import describe_remote
    from ivl3_plugin.checkpoint.mapping import (hf_spec, plan_hf_to_remote, plan_remote_to_hf, remote_spec,
                                                target_infos)
    from ivl3_plugin.checkpoint.weights import TensorInfo, plan_shards

    (vh, vheads, vlayers, vinter, six_b), (h, inter, layers, heads, kv) = REAL_SIZES[size]
    config = {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "ps_version": "v2",
        "downsample_ratio": 0.5, "force_image_size": 448, "select_layer": -1, "template": "internvl2_5",
        "vision_config": {"hidden_size": vh, "num_attention_heads": vheads, "num_hidden_layers": vlayers,
                          "intermediate_size": vinter, "patch_size": 14, "image_size": 448, "qkv_bias": not six_b,
                          "qk_normalization": six_b, "norm_type": "rms_norm" if six_b else "layer_norm"},
        "llm_config": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": h,
                       "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
                       "num_key_value_heads": kv, "vocab_size": 151674, "rope_theta": 1e6,
                       "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
    }
    desc = describe_remote(config, size)
    desc.image_token_id = 151667
    remote = {k: TensorInfo(tuple(v), "BF16") for k, v in remote_spec(desc).items()}
    hf = hf_spec(desc)
    to_hf = target_infos(plan_remote_to_hf(sorted(remote)), remote)
    assert {k: v.shape for k, v in to_hf.items()} == hf
    back = target_infos(plan_hf_to_remote(sorted(to_hf)), to_hf)
    assert back == remote
    total = sum(i.nbytes for i in remote.values())
    expected_params = {"InternVL3-1B": 0.9e9, "InternVL3-78B": 78e9}[size]
    assert 0.85 < total / 2 / expected_params < 1.1, total / 2
    shards = plan_shards(sorted(to_hf.items()), 5 * 1024 ** 3)
    assert all(sum(to_hf[n].nbytes for n in s) <= 5 * 1024 ** 3 for s in shards if len(s) > 1)


def test_writer_holds_one_shard_of_tensors_at_a_time(tmp_path):
    import weakref

    from ivl3_plugin.checkpoint.weights import TensorInfo, plan_shards, write_shards

    order = [(f"t{i:02d}", TensorInfo((256, 256), "F32")) for i in range(24)]  # 256 KiB each
    limit = 1024 ** 2  # 4 tensors per shard
    alive = []
    peak = {"n": 0}

    def make(name):
        tensor = torch.full((256, 256), float(int(name[1:])))
        alive.append(weakref.ref(tensor))
        peak["n"] = max(peak["n"], sum(r() is not None for r in alive))
        return tensor

    names = write_shards(tmp_path, order, make, max_shard_size=limit)
    assert len(names) == len(plan_shards(order, limit)) == 6
    assert peak["n"] <= 4, peak
    stored = load_tensors(tmp_path)
    assert all(torch.equal(stored[f"t{i:02d}"], torch.full((256, 256), float(i))) for i in range(24))
