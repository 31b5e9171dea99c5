"""Left padding, which ``ivl3 train --plan`` sets whenever a micro-batch holds more than one sample, trains
the same as ms-swift's default right padding and keeps logits for the answers only.

Why it matters: with right padding, ms-swift's ``logits_to_keep`` keeps every position from the earliest
answer of the micro-batch to the end, so a batch mixing a short and a long clip computes (and stores in
fp32) vocabulary-wide logits over the long clip's frames: on a GPU, 1B LoRA at micro-batch 4 on 8-32 frame
clips ran out of memory this way although the plan, which counts answer logits only, said 47 GiB.  With
left padding every answer ends at the last position and only the longest answer is kept.

The same 8 mixed-length rows (1-4 frames, answers of different lengths) train for 3 steps at micro-batch 2
with each side; a recorder logs how many positions ``logits_to_keep`` kept and the per-step losses must agree,
also with the LLM and ViT layers compiled (``ivl3_compile``), as the recipes train, with the LLM's attention
skipping padding (its default) and without."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.swift_cli import logged_losses, run_swift, swift_env
from tests.test_length_group_e2e import mixed_rows

pytest.importorskip("swift")

RECORDER = Path(__file__).with_name("swift_batch_recorder.py")  # ivl3_test_batches


def train(tiny_model, data, tmp_path, side, *callbacks, settings=None, log=None):
    name = "-".join([side, *callbacks, *(["set"] if settings else [])])
    kept = tmp_path / f"kept-{name}.jsonl"
    out = tmp_path / f"out-{name}"
    proc = run_swift("sft", [
        "--model", tiny_model, "--dataset", data, "--template", "ivl3_video", "--split_dataset_ratio", "0",
        "--tuner_type", "full", "--torch_dtype", "float32", "--attn_impl", "sdpa", "--max_length", "8192",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--max_steps", "3",
        "--learning_rate", "1e-4", "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none",
        "--logging_steps", "1", "--dataloader_num_workers", "0", "--dataset_num_proc", "1", "--seed", "7",
        "--padding_side", side, "--output_dir", out, "--custom_register_path", "ivl3_plugin",
        "--gradient_checkpointing", "false", "--external_plugins", RECORDER, "--callbacks", "ivl3_test_batches", *callbacks,
    ], cwd=tmp_path, env=swift_env(CUDA_VISIBLE_DEVICES="", IVL3_TEST_BATCHES=kept,
                                   TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
                                   **({"IVL3_CALLBACK_ARGS": json.dumps(settings)} if settings else {})))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    if log is not None:
        log.append(proc.stdout + proc.stderr)
    return logged_losses(out), [json.loads(x) for x in kept.read_text().splitlines()]


@pytest.mark.e2e
def test_left_padding_trains_the_same_and_keeps_only_the_answers(tiny_model, demo_annotations, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in mixed_rows(tmp_path, demo_annotations)))
    right_losses, right = train(tiny_model, data, tmp_path, "right")
    left_losses, left = train(tiny_model, data, tmp_path, "left")
    assert len(right_losses) == len(left_losses) == 3
    assert left_losses == pytest.approx(right_losses, rel=1e-4)
    assert len(left) == len(right) == 3
    for lb, rb in zip(left, right):
        assert lb["width"] == rb["width"] and lb["lengths"] == rb["lengths"]
        assert lb["kept"] == lb["answer"] + 1  # the longest answer and the position before it, no more
        assert rb["kept"] >= lb["kept"]
    assert sum(r["kept"] for r in right) > sum(r["kept"] for r in left)  # right padding keeps frame positions
    # what the recipes run: left padding through compiled layers (each length a new shape) trains the same
    # (ivl3_compile also makes the LLM's attention skip padding: one causal SDPA call per row)
    logs = []
    compiled_losses, compiled = train(tiny_model, data, tmp_path, "left", "ivl3_compile", log=logs)
    assert compiled_losses == pytest.approx(left_losses, rel=1e-4)
    assert compiled == left
    assert "language_model.layers: attention skips padding" in logs[0]
    masked_losses, _ = train(tiny_model, data, tmp_path, "left", "ivl3_compile",
                             settings={"ivl3_compile": {"skip_padding": False}}, log=logs)
    assert "skips padding" not in logs[1]
    assert masked_losses == pytest.approx(compiled_losses, rel=1e-4)
    # what the ZeRO-2/3 recipes run: uncompiled, ivl3_skip_padding alone
    skipping_losses, skipping = train(tiny_model, data, tmp_path, "left", "ivl3_skip_padding", log=logs)
    assert "ivl3_skip_padding: " in logs[2] and "attention skips padding" in logs[2]
    assert skipping_losses == pytest.approx(left_losses, rel=1e-4)
    assert skipping == left
