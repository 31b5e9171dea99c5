"""The pure parts of ``ivl3 demo --mpo`` (ivl3_plugin/demo_mpo.py): which train films are sampled, how the
logged rewards are read and printed, and what the verdict line may claim."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivl3_plugin.demo import DemoResult, format_table
from ivl3_plugin.demo_mpo import (
    MpoResult,
    reward_lines,
    reward_rows,
    sample_points,
    spread,
    verdict,
)


def test_spread_takes_evenly_spaced_rows_in_order():
    rows = list(range(144))
    picked = spread(rows, 32)
    assert len(picked) == 32 and len(set(picked)) == 32 and picked == sorted(picked)
    assert picked[0] == 0 and picked[-1] >= 139  # from the first film to near the last
    assert spread(rows[:5], 32) == rows[:5]
    with pytest.raises(ValueError):
        spread(rows, 0)


def test_spread_covers_every_colour_shape_and_direction_of_the_train_films():
    from ivl3_plugin.demo_data import ANNOTATIONS

    rows = [json.loads(l) for l in Path(ANNOTATIONS).read_text().splitlines() if l.strip()]
    train = [r["summary"] for r in rows if r.get("split", "train") != "val"]
    words = [s.rstrip(".").split() for s in spread(train, 32)]  # "A red circle moves right"
    assert {w[1] for w in words} == {"red", "green", "blue", "yellow"}
    assert {w[2] for w in words} == {"circle", "square", "triangle"}
    assert {w[-1] for w in words} == {"right", "left", "up", "down"}


def _log(tmp_path, rows):
    d = tmp_path / "train" / "v0-x"
    d.mkdir(parents=True)
    (d / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "train"


def test_reward_rows_reads_the_margin_per_step_and_skips_other_rows(tmp_path):
    out = _log(tmp_path, [
        {"loss": 1.0, "rewards/margins": 0.0, "rewards/accuracies": 0.0, "global_step/max_steps": "1/3"},
        {"loss": 0.8, "rewards/margins": 0.2, "rewards/accuracies": 0.75, "global_step/max_steps": "2/3"},
        {"train_runtime": 10.0},
        {"loss": 0.5, "rewards/margins": 0.9, "rewards/accuracies": 1.0, "global_step/max_steps": "3/3"}])
    rows = reward_rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3] and [r["margin"] for r in rows] == [0.0, 0.2, 0.9]
    assert rows[1]["accuracy"] == 0.75 and rows[2]["loss"] == 0.5
    margin, means, accuracy = reward_lines(rows)
    assert means == "MPO reward margin, mean of the first / last quarter of the steps: 0.0000 -> 0.9000"
    assert margin.startswith("MPO reward margin: 0.000 -> 0.900 (3 logged steps; step 1 0.000, step 2 0.200")
    assert accuracy.startswith("MPO reward accuracy: 0.00 -> 1.00")
    assert reward_lines([]) == ["MPO: no reward margin logged"]


def test_quarter_means():
    from ivl3_plugin.demo_mpo import quarter_means

    assert quarter_means([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == (0.5, 6.5)
    assert quarter_means([2.0]) == (2.0, 2.0)


def test_sample_points_keeps_first_and_last():
    pts = sample_points(list(range(24)), 5)
    assert pts[0] == 0 and pts[-1] == 23 and len(pts) == 5 and pts == sorted(pts)
    assert sample_points([1, 2], 5) == [1, 2]


def _counts(all_three, distinct=9):
    return {"colour": 9, "shape": 9, "direction": 9, "all": all_three, "videos": 9, "distinct": distinct}


def test_verdict_says_what_the_counts_say():
    assert verdict(_counts(9), _counts(9)).startswith("MPO left the held-out films as SFT had them")
    assert verdict(_counts(9), _counts(8)).startswith("MPO made the held-out films worse: all three right 9/9")
    assert verdict(_counts(7), _counts(8)).startswith("MPO improved")
    assert "(all three right 9/9 both times; 2 of 9 held-out predictions changed text)" in verdict(_counts(9), _counts(9), 2)


def test_format_table_adds_the_after_mpo_column():
    scores = {"rougeL": 90.0, "cider": 800.0}
    mpo = MpoResult({"rougeL": 95.0, "cider": 900.0}, _counts(8, 7), {}, {},
                    [{"step": 1, "margin": 0.0, "accuracy": 0.0, "loss": 1.0},
                     {"step": 2, "margin": 0.5, "accuracy": 1.0, "loss": 0.5}], pairs=20, sampled=128,
                    seconds={"mpo_train": 50.0})
    r = DemoResult({"rougeL": 0.0}, scores, [2.0, 1.0], {}, {"train": 10.0, "mpo_train": 50.0},
                   {"before": _counts(0, 1), "after": _counts(9)}, mpo)
    text = format_table(r)
    assert "rougeL         0.000    90.000   +90.000     95.000" in text
    assert "all three          0         9         8" in text and "distinct           1         9         7" in text
    assert "MPO pairs: 20 from 128 sampled candidates" in text
    assert "MPO reward margin: 0.000 -> 0.500" in text and "made the held-out films worse" in text
    assert "seconds: train 10, mpo_train 50" in text
    plain = format_table(DemoResult({"rougeL": 0.0}, scores, [], {}, {}, {"before": _counts(0, 1), "after": _counts(9)}))
    assert "MPO" not in plain and "all three          0         9\n" in plain + "\n"
