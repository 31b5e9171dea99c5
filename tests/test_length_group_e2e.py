"""``swift sft --callbacks ivl3_length_group`` really trains on length-grouped micro-batches: over two
epochs of 8 samples of 8 different lengths, every sample is fed exactly once per epoch, and each
micro-batch of 2 is a pair of neighbours in length order (the window covers the whole set), which random
batches are not.  A recorder callback (written next to the run) logs each batch's real lengths."""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.swift_cli import convert_demo_subset, run_swift, swift_env

pytest.importorskip("swift")

RECORDER = Path(__file__).with_name("swift_batch_recorder.py")  # ivl3_test_batches


def mixed_rows(tmp, demo_annotations):
    """8 converted demo clips cut to 1-4 frames, summaries lengthened by k sentences: 8 distinct lengths."""
    path = convert_demo_subset(demo_annotations, tmp, 8, 4)
    rows = []
    for k, line in enumerate(x for x in path.read_text().splitlines() if x.strip()):
        r = json.loads(line)
        n = 1 + k % 4
        r["videos"] = [r["videos"][0][:n]]
        if r.get("timestamps"):
            r["timestamps"] = [r["timestamps"][0][:n]]
        r["messages"][-1]["content"] += " It keeps moving." * k
        rows.append(r)
    return rows


def planned_lengths(tiny_model, rows):
    from swift import get_processor, get_template

    from ivl3_plugin.hosts.swift.install import install

    install()
    t = get_template(get_processor(str(tiny_model)), template_type="ivl3_video", max_length=8192)
    t.set_mode("train")
    return [len(t.encode(copy.deepcopy(r))["input_ids"]) for r in rows]


@pytest.mark.e2e
def test_every_sample_once_per_epoch_in_length_neighbour_pairs(tiny_model, demo_annotations, tmp_path):
    rows = mixed_rows(tmp_path, demo_annotations)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lengths = planned_lengths(tiny_model, rows)
    assert len(set(lengths)) == len(rows)
    batches = tmp_path / "batches.jsonl"
    home = tmp_path / "home"  # this test's own length cache
    args = [
        "--model", tiny_model, "--dataset", data, "--template", "ivl3_video", "--split_dataset_ratio", "0",
        "--tuner_type", "full", "--torch_dtype", "float32", "--attn_impl", "sdpa", "--max_length", "8192",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--learning_rate", "1e-4", "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none",
        "--logging_steps", "1", "--dataloader_num_workers", "0", "--dataset_num_proc", "1",
        "--custom_register_path", "ivl3_plugin", "--external_plugins", RECORDER,
    ]
    proc = run_swift("sft", args + [
        "--num_train_epochs", "2", "--output_dir", tmp_path / "out",
        "--callbacks", "ivl3_length_group", "ivl3_test_batches",
    ], cwd=tmp_path, env=swift_env(CUDA_VISIBLE_DEVICES="", IVL3_TEST_BATCHES=batches, IVL3_HOME=home))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "ivl3 length group: 8 sample lengths planned in" in proc.stdout + proc.stderr
    (cached,) = (home / "cache" / "lengths").glob("*.json")
    assert sorted(json.loads(cached.read_text())["lengths"]) == sorted(lengths)
    fed = [json.loads(line)["lengths"] for line in batches.read_text().splitlines()]
    assert len(fed) == 8  # 2 epochs x 4 micro-batches of 2
    ranked = sorted(lengths, reverse=True)
    pairs = Counter(tuple(ranked[i:i + 2]) for i in range(0, 8, 2))
    for epoch in (fed[:4], fed[4:]):
        assert Counter(x for b in epoch for x in b) == Counter(lengths)  # each sample exactly once
        assert Counter(tuple(sorted(b, reverse=True)) for b in epoch) == pairs  # grouped by length

    again = run_swift("sft", args + [
        "--max_steps", "1", "--output_dir", tmp_path / "again", "--callbacks", "ivl3_length_group",
    ], cwd=tmp_path, env=swift_env(CUDA_VISIBLE_DEVICES="", IVL3_HOME=home))
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert f"ivl3 length group: 8 sample lengths read from cache {cached}" in again.stdout + again.stderr
