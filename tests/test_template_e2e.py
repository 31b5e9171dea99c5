"""``ivl3_video`` inside the real ms-swift CLI: LoRA and full training, inference, timestamps, budget."""
from __future__ import annotations

import json

import pytest

from swift_cli import logged_losses, run_swift, swift_env

NUM_FRAMES = 4
FULL_LENGTH = 1256  # tokens of one 4-frame demo sample with the tiny tokenizer (tests below check it loosely)


@pytest.fixture(scope="module")
def ivl3_home(tmp_path_factory, demo_annotations):
    """An IVL3_HOME whose demo dataset is converted (6 clips, 4 frames), plus one over-long row file."""
    from ivl3_plugin.convert import convert

    home = tmp_path_factory.mktemp("ivl3home")
    rows = [l for l in demo_annotations.read_text().splitlines() if l.strip()][:6]
    ann = home / "ann.jsonl"
    ann.write_text("".join(json.dumps(dict(json.loads(r), video=str(demo_annotations.parent / json.loads(r)["video"]),
                                           split="train")) + "\n" for r in rows))
    convert(ann, home / "datasets" / "demo", num_frames=NUM_FRAMES, val_fraction=0.0)
    train = home / "datasets" / "demo" / "swift" / "train.jsonl"
    normal = [json.loads(l) for l in train.read_text().splitlines() if l.strip()]
    long_row = dict(normal[0], id="long-1")
    long_row["messages"] = [normal[0]["messages"][0], {"role": "assistant", "content": "moves " * 1500}]
    (home / "with_long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in normal[:3] + [long_row]))
    return home


def _sft(tiny_model, cwd, out, extra, env):
    return run_swift("sft", [
        "--custom_register_path", "ivl3_plugin", "--model", tiny_model, "--torch_dtype", "float32",
        "--split_dataset_ratio", "0", "--max_steps", "2", "--learning_rate", "1e-3", "--logging_steps", "1",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--gradient_checkpointing",
        "false", "--eval_strategy", "no", "--dataloader_num_workers", "0", "--report_to", "none", "--seed", "0",
        "--output_dir", out, *extra], cwd=cwd, env=env)


@pytest.mark.e2e
def test_lora_by_dataset_name_with_timestamps(tiny_model, ivl3_home, tmp_path):
    """Converted dataset by name: its ``timestamps`` column reaches the template (no extra flag needed)."""
    proc = _sft(tiny_model, tmp_path, tmp_path / "out", [
        "--dataset", "ivl3-demo", "--template", "ivl3_video_ts", "--tuner_type", "lora", "--save_strategy", "no"],
        swift_env(IVL3_HOME=ivl3_home))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert len(logged_losses(tmp_path / "out")) >= 2
    assert "Frame1 (" in log and "s): <img>" in log  # swift prints the first encoded sample


@pytest.mark.e2e
def test_full_with_budget_reduction_then_infer(tiny_model, ivl3_home, tmp_path):
    out = tmp_path / "out"
    train = ivl3_home / "datasets" / "demo" / "swift" / "train.jsonl"
    proc = _sft(tiny_model, tmp_path, out, [
        "--dataset", train, "--template", "ivl3_video", "--tuner_type", "full", "--max_length",
        str(FULL_LENGTH - 150), "--save_strategy", "steps", "--save_steps", "2"], swift_env(IVL3_HOME=ivl3_home))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert len(logged_losses(out)) >= 2
    assert f"frames {NUM_FRAMES}->{NUM_FRAMES - 1}" in log, log[-4000:]

    ckpt = sorted(out.rglob("checkpoint-*"))[-1]
    result = tmp_path / "result.jsonl"
    proc = run_swift("infer", [
        "--model", ckpt, "--custom_register_path", "ivl3_plugin", "--template", "ivl3_video",
        "--val_dataset", train, "--max_new_tokens", "4", "--temperature", "0", "--result_path", result,
        "--max_batch_size", "2"], cwd=tmp_path, env=swift_env(IVL3_HOME=ivl3_home))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert len(rows) == 6 and all(isinstance(r.get("response"), str) for r in rows)


@pytest.mark.e2e
def test_overlong_sample_stops_the_run_with_its_id(tiny_model, ivl3_home, tmp_path):
    """ms-swift would silently train on another sample; ours stops and names the row (a file path dataset
    keeps its ``id`` column with --remove_unused_columns false)."""
    proc = _sft(tiny_model, tmp_path, tmp_path / "out", [
        "--dataset", ivl3_home / "with_long.jsonl", "--template", "ivl3_video", "--tuner_type", "lora",
        "--remove_unused_columns", "false",
        "--max_length", "1400", "--max_steps", "4", "--per_device_train_batch_size", "1", "--save_strategy", "no"],
        swift_env(IVL3_HOME=ivl3_home))
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Ivl3FatalSampleError" in log and "sample long-1" in log and "max_length 1400" in log


@pytest.mark.e2e
def test_overlong_sample_skip_is_logged(tiny_model, ivl3_home, tmp_path):
    proc = _sft(tiny_model, tmp_path, tmp_path / "out", [
        "--dataset", ivl3_home / "with_long.jsonl", "--template", "ivl3_video", "--tuner_type", "lora",
        "--max_length", "1400", "--max_steps", "4", "--per_device_train_batch_size", "1", "--save_strategy", "no"],
        swift_env(IVL3_HOME=ivl3_home, IVL3_TEMPLATE_ARGS='{"ivl3_video": {"on_overflow": "skip"}}'))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "SKIPPED sample <no id column; media " in log  # swift dropped the id column: named by its frames
    assert len(logged_losses(tmp_path / "out")) >= 4
