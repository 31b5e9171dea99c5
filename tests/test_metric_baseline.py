"""Honest comparisons: ``ivl3 eval/report --baseline`` match items by id and say when the sets differ.

Before: a baseline sharing no id printed "+0.00" changes, and one covering 1 of 3 ids compared a
1-item corpus with a 3-item corpus (a -27 BLEU "change").  Now: no common id is an error; different
id sets are both scored on the common ids, with the counts in a warning, the JSON and the page.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ivl3_plugin.metric.compare import compare
from ivl3_plugin.metric.evaluation import MetricError, evaluate_predictions, format_table
from ivl3_plugin.metric.report import render_report

ROWS = [("clip_a", "A red circle moves from left to right.", "A red circle moves right."),
        ("clip_b", "A blue square falls from the top to the bottom.", "A blue square falls down."),
        ("clip_c", "A green triangle rises from the bottom to the top.", "A triangle goes up.")]
BASE = {"clip_a": "A circle moves.", "clip_b": "A square falls from the top.", "clip_c": "A shape."}


def ivl3(*args):
    return subprocess.run([sys.executable, "-m", "ivl3_plugin", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _preds(ids=None):
    return [{"id": i, "reference": r, "prediction": p} for i, r, p in ROWS if ids is None or i in ids]


def _base(ids, suffix=""):
    return [{"id": i + suffix, "reference": r, "prediction": BASE[i]} for i, r, _ in ROWS if i in ids]


def test_no_common_id_is_an_error(tmp_path):
    preds = _write(tmp_path / "p.jsonl", _preds())
    base = _write(tmp_path / "b.jsonl", _base(BASE, suffix="-other"))
    for cmd in ("eval", "report"):
        proc = ivl3(cmd, preds, "--baseline", base, "--meteor", "off", "--out", tmp_path / f"x.{cmd}")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"ivl3 {cmd}: error: no common ids: {base} shares no id with {preds}")
        assert "'clip_a'" in line and "'clip_a-other'" in line and "+0.00" not in proc.stdout
        assert not (tmp_path / f"x.{cmd}").exists()
    with pytest.raises(MetricError, match="no common ids"):
        compare(evaluate_predictions(_preds(), meteor=False), evaluate_predictions(_base(BASE, "-x"), meteor=False))


def test_partial_baseline_is_scored_on_the_common_ids(tmp_path):
    preds = _write(tmp_path / "p.jsonl", _preds())
    base = _write(tmp_path / "b.jsonl", _base({"clip_a", "clip_b"}) +
                  [{"id": "clip_z", "reference": "Something else.", "prediction": "Something."}])
    out = tmp_path / "scores.json"
    proc = ivl3("eval", preds, "--baseline", base, "--meteor", "off", "--out", out)
    assert proc.returncode == 0, proc.stderr
    warning = ("the baseline covers 2 of the 3 predictions (1 only in the predictions, 1 only in the baseline): "
               "both are scored again on the 2 common ids for the comparison")
    assert f"ivl3 eval: warning: {warning}" in proc.stderr and f"warning: {warning}" in proc.stdout
    result = json.loads(out.read_text())
    # the file's own scores stay those of all 3 items; the comparison is computed on the 2 common ones
    assert result["corpus"] == pytest.approx(evaluate_predictions(_preds(), meteor=False)["corpus"])
    ours_common = evaluate_predictions(_preds({"clip_a", "clip_b"}), meteor=False)["corpus"]
    base_common = evaluate_predictions(_base({"clip_a", "clip_b"}), meteor=False)["corpus"]
    b = result["baseline"]
    assert (b["common"], b["only_in_predictions"], b["only_in_baseline"], b["same_ids"]) == (2, 1, 1, False)
    assert b["predictions_corpus"] == pytest.approx(ours_common)
    assert b["corpus"] == pytest.approx(base_common)
    assert b["warnings"] == [warning]
    bleu_line = next(l for l in proc.stdout.splitlines() if l.startswith("BLEU-4"))
    change = ours_common["bleu4"] - base_common["bleu4"]
    assert bleu_line.split()[-1] == f"{change:+.2f}" and f"{ours_common['bleu4']:.2f}" in bleu_line
    assert "on 2 common" in proc.stdout.splitlines()[0]


def test_report_page_says_what_was_compared(tmp_path):
    preds = _write(tmp_path / "p.jsonl", _preds())
    base = _write(tmp_path / "b.jsonl", _base({"clip_a"}))
    out = tmp_path / "r.html"
    proc = ivl3("report", preds, "--baseline", base, "--meteor", "off", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "ivl3 report: warning: the baseline covers 1 of the 3 predictions" in proc.stderr
    page = out.read_text()
    assert '<div class="warning">warning: the baseline covers 1 of the 3 predictions (2 only in the predictions, ' \
           '0 only in the baseline)' in page
    assert "(1 samples, 1 matched by id)" in page
    ours_a = evaluate_predictions(_preds({"clip_a"}), meteor=False)["corpus"]["bleu4"]
    assert f"on the 1 common samples (ours there {ours_a:.1f})" in page
    data = json.loads(page.split('<script type="application/json" id="ivl3-data">')[1].split("</script>")[0])
    deltas = {it["id"]: it["delta"] for it in data["items"]}
    assert deltas["clip_b"] is None and deltas["clip_c"] is None and deltas["clip_a"] is not None


def test_same_ids_in_another_order_compare_item_by_item(tmp_path):
    result = evaluate_predictions(_preds(), meteor=False)
    shuffled = evaluate_predictions(list(reversed(_preds())), meteor=False)
    cmp = compare(result, shuffled)
    assert cmp["same_ids"] and cmp["warnings"] == [] and cmp["common"] == 3
    assert all(v["predictions"] == pytest.approx(v["baseline"]) for v in cmp["items"].values())
    table = format_table(result, cmp)
    assert "+0.00" in table and "common" not in table and "warning" not in table


def test_other_references_for_the_same_id_are_named(tmp_path):
    result = evaluate_predictions(_preds(), meteor=False)
    other = [dict(r, reference="A different reference text.") if r["id"] == "clip_b" else r for r in _preds()]
    cmp = compare(result, evaluate_predictions(other, meteor=False))
    assert cmp["different_references"] == ["clip_b"]
    assert cmp["warnings"] == ["1 common ids have other references in the baseline (e.g. 'clip_b'): "
                               "their scores do not compare"]
    page = render_report(result, evaluate_predictions(other, meteor=False))
    assert "their scores do not compare" in page
