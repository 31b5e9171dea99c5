"""OpenGVLab-format (remote-code) InternVL3 checkpoints train out of the box in ms-swift with our plugin.

The fixture is our own remote-format tiny model (``ivl3_plugin/tiny/remote.py``), written like the
release-era files: its class does not call ``post_init()`` and its config asks for flash attention,
which is not installed here.  Unit tests cover the checks in ``hosts/swift/remote_code.py``; the e2e
test drives the real ``swift sft`` (LoRA) and ``ivl3 predict`` on it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

pytest.importorskip("swift")

from swift_cli import convert_demo_subset, logged_losses, run_swift, swift_env  # noqa: E402


def _hub_like(folder):
    """What OpenGVLab's config.json says: flash attention for the LLM and the vision tower."""
    cfg = json.loads((folder / "config.json").read_text())
    cfg["llm_config"]["attn_implementation"] = "flash_attention_2"
    cfg["vision_config"]["use_flash_attn"] = True
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return folder


@pytest.fixture(scope="module")
def release_era(tmp_path_factory):
    from ivl3_plugin.tiny.model import demo_text
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    root = tmp_path_factory.mktemp("remote-era")
    return _hub_like(build_tiny_remote_model(root / "InternVL3-tiny", post_init=False, extra_text=demo_text()))


def test_timm_import_without_timm_is_refused_naming_the_file(tmp_path, monkeypatch):
    from ivl3_plugin.hosts.swift import remote_code

    (tmp_path / "modeling_intern_vit.py").write_text("import torch\nfrom timm.models.layers import DropPath\n")
    real = remote_code.importlib.util.find_spec
    monkeypatch.setattr(remote_code.importlib.util, "find_spec", lambda n, *a: None if n == "timm" else real(n, *a))
    with pytest.raises(remote_code.RemoteCodeError, match=r"modeling_intern_vit\.py imports timm.*pip install timm"):
        remote_code.check_remote_imports(tmp_path)
    monkeypatch.undo()
    remote_code.check_remote_imports(tmp_path)  # timm is installed with the swift extra: nothing to say


def test_attention_is_chosen_not_crashed_into(monkeypatch):
    from ivl3_plugin.hosts.swift import remote_code

    hub = SimpleNamespace(llm_config=SimpleNamespace(attn_implementation="flash_attention_2"),
                          vision_config=SimpleNamespace(use_flash_attn=True))
    plain = SimpleNamespace(llm_config=SimpleNamespace(attn_implementation="eager"), vision_config=SimpleNamespace())
    real = remote_code.importlib.util.find_spec
    monkeypatch.setattr(remote_code.importlib.util, "find_spec", lambda n, *a: None if n == "flash_attn" else real(n, *a))
    assert remote_code.choose_attn_impl(None, hub) == "eager"  # asked for flash, none installed: eager, said once
    assert remote_code.choose_attn_impl(None, plain) is None    # the checkpoint's own choice works
    assert remote_code.choose_attn_impl("sdpa", hub) == "sdpa"  # the user's choice stands
    with pytest.raises(remote_code.RemoteCodeError, match="needs the flash-attn package"):
        remote_code.choose_attn_impl("flash_attn", hub)
    monkeypatch.setattr(remote_code.importlib.util, "find_spec", lambda n, *a: object() if n == "flash_attn" else real(n, *a))
    assert remote_code.choose_attn_impl(None, hub) is None      # flash-attn installed: the checkpoint's flash


def test_llamafactory_host_refuses_a_remote_checkpoint_with_the_way_out(release_era):
    from ivl3_plugin.hosts import get_host
    from ivl3_plugin.recipe.config import Recipe

    recipe = Recipe(None, {"model": str(release_era), "template": "ivl3_video", "dataset": ["x"],
                           "tuner_type": "lora", "output_dir": "out"})
    problems = get_host("llamafactory").validate(recipe)
    assert len(problems) == 1 and "remote-code" in problems[0] and "ivl3 checkpoint to-hf" in problems[0]


@pytest.mark.e2e
def test_release_era_hub_checkpoint_trains_and_predicts(release_era, tmp_path, demo_annotations):
    train = convert_demo_subset(demo_annotations, tmp_path, count=4, num_frames=2)
    out = tmp_path / "out"
    env = swift_env(HF_MODULES_CACHE=tmp_path / "hf-modules")
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin", "--model", release_era, "--template", "ivl3_video",
        "--dataset", train, "--split_dataset_ratio", "0", "--tuner_type", "lora", "--torch_dtype", "float32",
        "--max_steps", "2", "--learning_rate", "1e-2", "--per_device_train_batch_size", "2", "--logging_steps", "1",
        "--gradient_checkpointing", "false", "--save_strategy", "steps", "--save_steps", "2",
        "--eval_strategy", "no", "--dataloader_num_workers", "0", "--report_to", "none", "--output_dir", out,
    ], cwd=tmp_path, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "all_tied_weights_keys" not in log                   # the release-era class was repaired
    assert "training with EAGER attention" in log and "ivl3 checkpoint to-hf" in log  # said, not crashed
    assert len(logged_losses(out)) == 2
    adapter = next(out.rglob("checkpoint-2"))
    preds = tmp_path / "preds.jsonl"
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "predict", "--adapters", str(adapter),
                           "--dataset", str(train), "--out", str(preds), "--max-new-tokens", "8"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert len(preds.read_text().splitlines()) == 4
