"""ivl3 checkpoint / export refuse bad input with a message naming the file or tensor, and write nothing."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from checkpoint_helpers import leftovers, load_tensors


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    return build_tiny_remote_model(tmp_path_factory.mktemp("refusals") / "remote")


@pytest.fixture(scope="module")
def hf(remote, tmp_path_factory):
    from ivl3_plugin.checkpoint import to_hf

    return to_hf(remote, tmp_path_factory.mktemp("refusals-hf") / "hf")


def _copy(src, tmp_path, name="src"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _edit_config(folder, edit):
    data = json.loads((folder / "config.json").read_text())
    edit(data)
    (folder / "config.json").write_text(json.dumps(data))


def _rewrite_tensors(folder, edit):
    from safetensors.torch import save_file

    tensors = load_tensors(folder)
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _refused(call, dst, *fragments):
    from ivl3_plugin.checkpoint import CheckpointError

    with pytest.raises(CheckpointError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert str(fragment) in message, f"{fragment!r} not in: {message}"
    assert not dst.exists(), f"{dst} was written"
    assert leftovers(dst.parent) == [] if dst.parent.exists() else True
    return message


def test_neither_format(tmp_path):
    from ivl3_plugin.checkpoint import to_hf

    src = tmp_path / "llava"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"architectures": ["LlavaForConditionalGeneration"],
                                                 "model_type": "llava"}))
    _refused(lambda: to_hf(src, tmp_path / "dst"), tmp_path / "dst", src, "LlavaForConditionalGeneration",
             "InternVLChatModel", "InternVLForConditionalGeneration")
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(lambda: to_hf(empty, tmp_path / "dst"), tmp_path / "dst", empty, "no config.json")
    _refused(lambda: to_hf(tmp_path / "nowhere", tmp_path / "dst"), tmp_path / "dst", tmp_path / "nowhere")


def test_missing_shard(remote, tmp_path):
    from ivl3_plugin.checkpoint import to_hf, to_remote

    sharded = to_hf(remote, tmp_path / "sharded", max_shard_size="300KB")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    gone = sorted(set(index["weight_map"].values()))[1]
    (sharded / gone).unlink()
    _refused(lambda: to_remote(sharded, tmp_path / "dst", code_from=remote), tmp_path / "dst", gone,
             "model.safetensors.index.json")


@pytest.mark.parametrize("tensor,shape", [
    ("vision_model.encoder.layers.1.mlp.fc1.weight", (255, 64)),
    ("language_model.model.layers.0.self_attn.k_proj.weight", (64, 64)),
    ("mlp1.1.weight", (64, 128)),
])
def test_mismatched_shape(remote, tmp_path, tensor, shape):
    import torch

    from ivl3_plugin.checkpoint import to_hf

    src = _copy(remote, tmp_path)
    _rewrite_tensors(src, lambda t: t.__setitem__(tensor, torch.zeros(shape)))
    _refused(lambda: to_hf(src, tmp_path / "dst"), tmp_path / "dst", tensor, str(shape))


def test_mismatched_shape_in_an_hf_source(hf, tmp_path, remote):
    import torch

    from ivl3_plugin.checkpoint import to_remote

    src = _copy(hf, tmp_path)
    name = "vision_tower.encoder.layer.0.attention.k_proj.weight"
    _rewrite_tensors(src, lambda t: t.__setitem__(name, torch.zeros(32, 64)))
    _refused(lambda: to_remote(src, tmp_path / "dst", code_from=remote), tmp_path / "dst", name)


def test_missing_and_unknown_tensors(remote, tmp_path):
    import torch

    from ivl3_plugin.checkpoint import to_hf

    src = _copy(remote, tmp_path, "missing")
    _rewrite_tensors(src, lambda t: t.pop("mlp1.3.bias"))
    _refused(lambda: to_hf(src, tmp_path / "dst"), tmp_path / "dst", "mlp1.3.bias", "missing")
    src = _copy(remote, tmp_path, "extra")
    _rewrite_tensors(src, lambda t: t.__setitem__("vision_model.encoder.layers.0.attn.extra", torch.zeros(3)))
    _refused(lambda: to_hf(src, tmp_path / "dst"), tmp_path / "dst", "vision_model.encoder.layers.0.attn.extra")


def test_plans_name_the_tensor_they_cannot_place():
    from ivl3_plugin.checkpoint import CheckpointError
    from ivl3_plugin.checkpoint.mapping import plan_hf_to_remote, plan_remote_to_hf

    with pytest.raises(CheckpointError, match=r"vision_model\.encoder\.layers\.3\.attn\.fused"):
        plan_remote_to_hf(["vision_model.encoder.layers.3.attn.fused"])
    with pytest.raises(CheckpointError, match=r"layer\.2\.attention\.q_proj\.weight.*k/v_proj"):
        plan_hf_to_remote(["vision_tower.encoder.layer.2.attention.q_proj.weight"])
    with pytest.raises(CheckpointError, match="two spellings"):
        plan_hf_to_remote(["lm_head.weight", "language_model.lm_head.weight"])


def test_destination_inside_source_or_existing(remote, tmp_path):
    from ivl3_plugin.checkpoint import to_hf

    src = _copy(remote, tmp_path)
    before = sorted(p.name for p in src.iterdir())
    _refused(lambda: to_hf(src, src / "hf"), src / "hf", "inside the source", src)
    _refused(lambda: to_hf(src, src), src / "never", "inside the source")
    assert sorted(p.name for p in src.iterdir()) == before
    dst = tmp_path / "exists"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    from ivl3_plugin.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="exists.*--overwrite"):
        to_hf(src, dst)
    assert [p.name for p in dst.iterdir()] == ["keep.txt"]
    with pytest.raises(CheckpointError, match="inside the destination"):
        to_hf(src, tmp_path, overwrite=True)  # replacing DST would delete SRC
    assert src.is_dir()


def test_internvl3_9b_internlm3_is_refused(remote, tmp_path):
    from ivl3_plugin.checkpoint import to_hf

    src = _copy(remote, tmp_path)

    def internlm3(data):
        data["llm_config"].update(architectures=["InternLM3ForCausalLM"], model_type="internlm3")

    _edit_config(src, internlm3)
    _refused(lambda: to_hf(src, tmp_path / "dst"), tmp_path / "dst", "InternLM3", "InternVL3-9B", "config.json")


def test_pixel_shuffle_v1_is_refused(remote, tmp_path):
    from ivl3_plugin.checkpoint import to_hf

    src = _copy(remote, tmp_path)
    _edit_config(src, lambda d: d.__setitem__("ps_version", "v1"))
    _refused(lambda: to_hf(src, tmp_path / "dst"), tmp_path / "dst", "ps_version", "config.json")


def test_remote_output_needs_modeling_files(hf, remote, tmp_path):
    from ivl3_plugin.checkpoint import to_remote

    _refused(lambda: to_remote(hf, tmp_path / "dst"), tmp_path / "dst", "code_from")
    code = _copy(remote, tmp_path, "code")
    (code / "modeling_internvl_chat.py").unlink()
    _refused(lambda: to_remote(hf, tmp_path / "dst", code_from=code), tmp_path / "dst", "modeling_internvl_chat.py")


def test_a_failure_while_writing_leaves_no_destination(remote, tmp_path, monkeypatch):
    import importlib

    from ivl3_plugin.checkpoint import to_hf

    convert_module = importlib.import_module("ivl3_plugin.checkpoint.converter")

    calls = {"n": 0}
    real = convert_module.run_step

    def failing(step, target, read):
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError("disk full")
        return real(step, target, read)

    monkeypatch.setattr(convert_module, "run_step", failing)
    dst = tmp_path / "dst"
    with pytest.raises(OSError, match="disk full"):
        to_hf(remote, dst, max_shard_size="100KB")
    assert calls["n"] == 20 and not dst.exists() and leftovers(tmp_path) == []


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "ivl3_plugin", *map(str, argv)], capture_output=True, text=True,
                          timeout=300)


def test_cli_bad_input_is_a_one_line_exit_2(remote, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    proc = _cli("checkpoint", "to-hf", bad, tmp_path / "dst")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ivl3 checkpoint: error:") and str(bad) in lines[0]
    assert not (tmp_path / "dst").exists()
    proc = _cli("checkpoint", "to-remote", remote, remote / "inside")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "inside" in proc.stderr
    proc = _cli("checkpoint", "info", tmp_path / "nowhere")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_cli_converts_and_reports(remote, tmp_path):
    proc = _cli("checkpoint", "to-hf", remote, tmp_path / "hf", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(tmp_path / "hf")
    proc = _cli("checkpoint", "info", tmp_path / "hf", "--json")
    report = json.loads(proc.stdout)
    assert report["format"] == "hf" and report["problems"] == [] and report["tokenizer"]["img_context_id"] == 5


# ---- export --------------------------------------------------------------------------------------------------------
def test_export_refuses_a_zero_only_checkpoint(remote, tmp_path):
    from ivl3_plugin.checkpoint import export

    ckpt = tmp_path / "run" / "v0-1" / "checkpoint-4"
    (ckpt / "global_step4").mkdir(parents=True)
    (ckpt / "global_step4" / "zero_pp_rank_0_mp_rank_00_model_states.pt").write_bytes(b"")
    (ckpt / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
    shutil.copyfile(remote / "config.json", ckpt / "config.json")
    _refused(lambda: export(tmp_path / "run", tmp_path / "dst"), tmp_path / "dst", "global_step4", "zero_to_fp32.py",
             ckpt)
    proc = _cli("export", tmp_path / "run", tmp_path / "dst")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "zero_to_fp32.py" in proc.stderr


def _adapter(folder, base, tensors, **config):
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                            "base_model_name_or_path": str(base), **config}))
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def test_export_refuses_bad_adapters(remote, tmp_path):
    import torch

    from ivl3_plugin.checkpoint import export

    key = "base_model.model.language_model.model.layers.0.self_attn.q_proj"
    a, b = torch.zeros(2, 64), torch.zeros(64, 2)
    one_sided = _adapter(tmp_path / "one", remote, {f"{key}.lora_A.weight": a})
    _refused(lambda: export(one_sided, tmp_path / "dst"), tmp_path / "dst", "q_proj", "lora_B")
    hub = _adapter(tmp_path / "hub", "OpenGVLab/InternVL3-1B", {f"{key}.lora_A.weight": a, f"{key}.lora_B.weight": b})
    _refused(lambda: export(hub, tmp_path / "dst"), tmp_path / "dst", "OpenGVLab/InternVL3-1B", "--base")
    dora = _adapter(tmp_path / "dora", remote, {f"{key}.lora_A.weight": a, f"{key}.lora_B.weight": b}, use_dora=True)
    _refused(lambda: export(dora, tmp_path / "dst"), tmp_path / "dst", "use_dora")
    wrong = _adapter(tmp_path / "wrong", remote, {f"{key}.lora_A.weight": torch.zeros(2, 32),
                                                  f"{key}.lora_B.weight": b})
    _refused(lambda: export(wrong, tmp_path / "dst"), tmp_path / "dst", "q_proj", "(64, 64)")
    absent = "base_model.model.language_model.model.layers.7.self_attn.q_proj"
    stray = _adapter(tmp_path / "stray", remote, {f"{absent}.lora_A.weight": a, f"{absent}.lora_B.weight": b})
    _refused(lambda: export(stray, tmp_path / "dst"), tmp_path / "dst", "layers.7.self_attn.q_proj", str(remote))


def test_export_finds_the_last_checkpoint_of_one_run(tmp_path):
    from ivl3_plugin.checkpoint import CheckpointError
    from ivl3_plugin.checkpoint.export import find_checkpoint

    for step in (2, 10, 9):
        (tmp_path / "out" / "v0-a" / f"checkpoint-{step}").mkdir(parents=True)
    assert find_checkpoint(tmp_path / "out").name == "checkpoint-10"
    assert find_checkpoint(tmp_path / "out" / "v0-a").name == "checkpoint-10"
    (tmp_path / "out" / "v1-b" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="several runs.*v0-a.*v1-b"):
        find_checkpoint(tmp_path / "out")
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        find_checkpoint(tmp_path / "out" / "v1-b" / "checkpoint-3")


def test_hf_image_token_id_must_match_the_tokenizer(hf, remote, tmp_path):
    from ivl3_plugin.checkpoint import to_remote

    src = _copy(hf, tmp_path)
    _edit_config(src, lambda d: d.__setitem__("image_token_id", 7))
    _refused(lambda: to_remote(src, tmp_path / "dst", code_from=remote), tmp_path / "dst", "image_token_id is 7",
             "<IMG_CONTEXT> = 5")
