"""Sampled candidates through the real ``swift infer`` (tiny model), then preference pairs from them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from swift_cli import convert_demo_subset, swift_env


def _ivl3(*args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=swift_env(), check=False)
    return proc


@pytest.mark.e2e
def test_sampled_candidates_then_pairs(tmp_path, tiny_model, demo_annotations):
    dataset = convert_demo_subset(demo_annotations, tmp_path, count=3, num_frames=2)
    rows = [json.loads(l) for l in dataset.read_text().splitlines()]
    sampling = ["--num-samples", "3", "--temperature", "1.0", "--seed", "7", "--max-new-tokens", "8",
                "--max-batch-size", "3"]

    # 1. ivl3 predict samples 3 candidates per video in one swift infer run
    proc = _ivl3("predict", "--model", tiny_model, "--dataset", dataset, "--out", tmp_path / "cands.jsonl", *sampling)
    assert proc.returncode == 0, proc.stderr[-4000:]
    cands = [json.loads(l) for l in (tmp_path / "cands.jsonl").read_text().splitlines()]
    assert [c["id"] for c in cands] == [r["id"] for r in rows]
    assert all(len(c["candidates"]) == 3 and c["prediction"] == c["candidates"][0] for c in cands)
    assert any(len(set(c["candidates"])) > 1 for c in cands), cands  # sampling, not greedy copies
    raw = [json.loads(l) for l in (tmp_path / "cands.swift_infer.jsonl").read_text().splitlines()]
    assert len(raw) == 9  # one result per sample

    # 2. ivl3 pairs --model samples again with the same seed: the same candidates, then pairs from them
    out = tmp_path / "pairs"
    proc = _ivl3("pairs", "--model", tiny_model, "--dataset", dataset, "--out", out, *sampling)
    assert proc.returncode in (0, 1), proc.stderr[-4000:]
    again = [json.loads(l) for l in (out / "candidates.jsonl").read_text().splitlines()]
    assert [c["candidates"] for c in again] == [c["candidates"] for c in cands]

    report = json.loads((out / "pairs.report.json").read_text())
    assert report["rows"] == 3 and report["kept"] + report["skipped"] == 3
    assert all(s["reason"] in ("below_margin", "rejected_is_reference") for s in report["skipped_rows"])
    swift_rows = [json.loads(l) for l in (out / "swift" / "pairs.jsonl").read_text().splitlines()]
    assert len(swift_rows) == report["kept"] >= 1
    by_id = {r["id"]: r for r in rows}
    for pair in swift_rows:
        src, sampled = by_id[pair["id"]], next(c["candidates"] for c in cands if c["id"] == pair["id"])
        assert pair["videos"] == src["videos"] and len(pair["videos"][0]) == 2
        assert all(Path(f).is_file() for f in pair["videos"][0])
        assert pair["messages"] == src["messages"] and pair["rejected_response"] in sampled
    lf = json.loads((out / "llamafactory" / "pairs.json").read_text())
    assert [r["videos"] for r in lf] == [p["videos"] for p in swift_rows]

    # 3. the candidates file alone rebuilds the same pairs (no sampling)
    proc = _ivl3("pairs", "--candidates", tmp_path / "cands.jsonl", "--dataset", dataset, "--out", tmp_path / "p2",
                 "--seed", "7", "--no-progress")
    assert proc.returncode in (0, 1), proc.stderr[-4000:]
    assert (tmp_path / "p2" / "swift" / "pairs.jsonl").read_text() == (out / "swift" / "pairs.jsonl").read_text()
