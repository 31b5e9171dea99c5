"""``ivl3 eval`` / ``ivl3 report`` on the predictions shapes people have, and clear errors on bad rows."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ivl3_plugin.metric.predictions import PredictionsError, load_predictions
from ivl3_plugin.metric.scoring import score

ROWS = [("clip_a", "A red circle moves from left to right.", "A red circle moves right."),
        ("clip_b", "A blue square falls from the top to the bottom.", "A blue square falls down."),
        ("clip_c", "A green triangle rises from the bottom to the top.", "A triangle goes up.")]


def ivl3(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ivl3_plugin", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def write_formats(tmp_path):
    ours = tmp_path / "ours.jsonl"
    ours.write_text("".join(json.dumps({"id": i, "reference": r, "prediction": p, "frames": [f"/f/{i}.jpg"]}) + "\n"
                            for i, r, p in ROWS))
    swift = tmp_path / "swift_infer.jsonl"  # swift infer --result_path rows
    swift.write_text("".join(json.dumps({
        "response": p, "labels": r, "logprobs": None, "id": i,
        "messages": [{"role": "user", "content": "<video>\nSummarise the video."}],
        "videos": [[f"/f/{i}/000.jpg", f"/f/{i}/001.jpg"]]}) + "\n" for i, r, p in ROWS))
    guide = tmp_path / "evaluation_results.json"  # the user guide's shape
    guide.write_text(json.dumps([{"id": i, "ground_truth": r, "prediction": p, "image": f"/f/{i}.jpg"}
                                 for i, r, p in ROWS]))
    return ours, swift, guide


def test_all_three_formats_read_the_same(tmp_path):
    ours, swift, guide = write_formats(tmp_path)
    loaded = [load_predictions(p) for p in (ours, swift, guide)]
    for preds in loaded:
        assert [(p.id, p.references, p.prediction) for p in preds] == [(i, [r], p) for i, r, p in ROWS]
    assert loaded[1][0].frames == ["/f/clip_a/000.jpg", "/f/clip_a/001.jpg"]
    assert loaded[2][2].frames == ["/f/clip_c.jpg"]


def test_eval_cli_prints_table_and_writes_json(tmp_path):
    ours, _, guide = write_formats(tmp_path)
    out = tmp_path / "scores.json"
    proc = ivl3("eval", guide, "--out", out, "--meteor", "off")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    expected = score([p for _, _, p in ROWS], [r for _, r, _ in ROWS], meteor=False).corpus
    assert result["corpus"] == pytest.approx(expected, abs=1e-9)
    assert [it["id"] for it in result["items"]] == [i for i, _, _ in ROWS]
    assert f"{expected['cider']:.2f}" in proc.stdout and "CIDEr-D" in proc.stdout and "BLEU-4" in proc.stdout
    # with a baseline: a change column
    proc = ivl3("eval", ours, "--baseline", guide, "--out", tmp_path / "cmp.json", "--meteor", "off")
    assert proc.returncode == 0 and "+0.00" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("content, message", [
    ('{"id": "x", "reference": "a b"}\n', r"bad\.jsonl:1: no prediction"),
    ('{"id": "x", "prediction": "a"}\n{"id": "y", "prediction": "a", "reference": 3}\n', r"bad\.jsonl:1: no reference"),
    ('{"id": "x", "prediction": "a", "reference": ["a", 3]}\n', r"bad\.jsonl:1, field 'reference'"),
    ('{"id": "x", "prediction": "a", "reference": "a"}\n{"id": "x", "prediction": "b", "reference": "b"}\n',
     r"bad\.jsonl:2: id 'x' repeats .*bad\.jsonl:1"),
    ('{"id": "x", "prediction": "a", "reference": "a"}\nnot json\n', r"bad\.jsonl:2: not valid JSON"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(PredictionsError, match=message):
        load_predictions(bad)
    proc = ivl3("eval", bad, "--meteor", "off")
    assert proc.returncode == 2 and "ivl3 eval: error:" in proc.stderr, proc.stderr


def test_report_cli_writes_self_contained_html(tmp_path):
    from PIL import Image

    frames = []
    for k in range(3):
        f = tmp_path / f"frame{k}.jpg"
        Image.new("RGB", (64, 48), (40 * k, 90, 200)).save(f)
        frames.append(str(f))
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "reference": r, "prediction": p, "frames": frames}) + "\n"
                             for i, r, p in ROWS))
    out = tmp_path / "r.html"
    proc = ivl3("report", preds, "--out", out, "--meteor", "off", "--max-frames", "2")
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.count('src="data:image/jpeg;base64,') == 2 * len(ROWS)  # 2 key frames per sample, inlined
    assert "src=\"/" not in page and "http" not in page.split("<main")[1]  # nothing fetched from outside
    for i, _, p in ROWS:
        assert f'data-id="{i}"' in page
        assert p.split()[0] in page


def test_rows_as_dicts_score_like_the_file(tmp_path):
    from ivl3_plugin.metric.evaluation import evaluate_predictions

    ours, _, guide = write_formats(tmp_path)
    rows = json.loads(guide.read_text())
    assert evaluate_predictions(rows, meteor=False)["corpus"] == evaluate_predictions(ours, meteor=False)["corpus"]
    from ivl3_plugin.metric.predictions import PredictionsError

    with pytest.raises(PredictionsError, match=r"predictions\[1\]: no prediction"):
        evaluate_predictions([rows[0], {"id": "z", "ground_truth": "a"}], meteor=False)
