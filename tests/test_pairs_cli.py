"""``ivl3 pairs --candidates …`` on a dataset made by the real converter (no swift run)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from swift_cli import convert_demo_subset

from ivl3_plugin.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, demo_annotations) -> Path:
    return convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("pairs"), count=3, num_frames=2)


def _rows(path: Path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def _write_candidates(path: Path, dataset: Path, extra_ids=()):
    rows = _rows(dataset)
    out = [{"id": r["id"], "reference": r["messages"][-1]["content"], "prediction": r["messages"][-1]["content"],
            "candidates": [r["messages"][-1]["content"], "Nothing moves at all today.", "A shape."]} for r in rows]
    out += [{"id": i, "reference": "r", "prediction": "p", "candidates": ["p"]} for i in extra_ids]
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def test_pairs_from_a_candidates_file(tmp_path, dataset, capsys):
    cands = _write_candidates(tmp_path / "c.jsonl", dataset)
    code = main(["pairs", "--dataset", str(dataset), "--candidates", str(cands), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "3 pairs kept, 0 rows skipped of 3; score = 0.5*cider + 0.5*rougeL (ivl3_summary)" in out
    assert "pairs: scoring candidate 3/3 of 3 rows" in err
    src = _rows(dataset)
    swift = _rows(tmp_path / "out" / "swift" / "pairs.jsonl")
    assert [r["id"] for r in swift] == [r["id"] for r in src]
    for s, r in zip(swift, src):
        assert s["messages"] == r["messages"]  # chosen = the reference, the prompt as converted
        assert s["videos"] == r["videos"] and all(Path(f).is_file() for f in s["videos"][0])
        assert s["rejected_response"] in ("Nothing moves at all today.", "A shape.")
    lf = json.loads((tmp_path / "out" / "llamafactory" / "pairs.json").read_text())
    assert [r["chosen"]["content"] for r in lf] == [r["messages"][-1]["content"] for r in src]
    assert [r["videos"] for r in lf] == [r["videos"] for r in src]
    report = json.loads((tmp_path / "out" / "pairs.report.json").read_text())
    assert report["kept"] == 3 and report["skipped_rows"] == []

    # chosen=best: the candidate equal to the reference wins
    code = main(["pairs", "--dataset", str(dataset), "--candidates", str(cands), "--out", str(tmp_path / "best"),
                 "--chosen", "best", "--no-progress"])
    assert code == 0
    assert [r["messages"][-1]["content"] for r in _rows(tmp_path / "best" / "swift" / "pairs.jsonl")] == \
        [r["messages"][-1]["content"] for r in src]


def test_skipped_rows_are_printed_and_set_the_exit_status(tmp_path, dataset, capsys):
    rows = _rows(dataset)
    gone = dict(rows[1], videos=[[rows[1]["videos"][0][0], str(tmp_path / "gone.jpg")]])
    local = tmp_path / "train.jsonl"
    local.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], gone, rows[2]]))
    cands = _write_candidates(tmp_path / "c.jsonl", dataset)
    code = main(["pairs", "--dataset", str(local), "--candidates", str(cands), "--out", str(tmp_path / "o"),
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"skipped {local}:2 ({rows[1]['id']}): missing_frames: 1 of 2 frame files missing" in err
    assert "2 pairs kept, 1 rows skipped of 3 (missing_frames 1)" in out

    code = main(["pairs", "--dataset", str(dataset), "--candidates", str(cands), "--out", str(tmp_path / "m"),
                 "--margin", "100000", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1 and "0 pairs kept, 3 rows skipped of 3 (below_margin 3)" in out
    assert _rows(tmp_path / "m" / "swift" / "pairs.jsonl") == []


@pytest.mark.parametrize("argv,message", [
    (["--candidates", "{c}", "--model", "{tmp}"], "give either --candidates FILE or --model/--adapters"),
    (["--candidates", "{extra}"], "does not match the dataset: 1 candidate id(s) are not in the dataset (e.g. 'zz')"),
    (["--candidates", "{c}", "--score", "cider=oops"], "--score 'cider=oops': 'oops' is not a number"),
    (["--candidates", "{c}", "--metric", "nope"], "no metric named 'nope'"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, dataset, capsys, argv, message):
    values = {"c": _write_candidates(tmp_path / "c.jsonl", dataset),
              "extra": _write_candidates(tmp_path / "x.jsonl", dataset, extra_ids=["zz"]), "tmp": tmp_path}
    code = main(["pairs", "--dataset", str(dataset), "--out", str(tmp_path / "o"),
                 *[a.format(**values) for a in argv]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_dataset_folder_is_refused(tmp_path, dataset, capsys):
    code = main(["pairs", "--dataset", str(dataset.parent), "--candidates", str(dataset), "--out", str(tmp_path)])
    assert code == 2 and "not a file" in capsys.readouterr().err


def _earlier_run(tmp_path, dataset):
    """An OUT folder holding an earlier run's candidates.jsonl, and a (weightless) model folder."""
    out = tmp_path / "o"
    out.mkdir()
    _write_candidates(out / "candidates.jsonl", dataset)
    model = tmp_path / "model"
    model.mkdir()
    return out, model


def test_sampled_candidates_are_reused_on_a_second_run(tmp_path, dataset, capsys):
    """With --model, OUT/candidates.jsonl from an earlier run is reused (no swift run) when its count matches."""
    out, model = _earlier_run(tmp_path, dataset)
    code = main(["pairs", "--dataset", str(dataset), "--model", str(model), "--out", str(out), "--num-samples", "3"])
    out_text, err = capsys.readouterr()
    assert code == 0 and f"reusing the candidates in {out / 'candidates.jsonl'}" in err
    assert "3 pairs kept" in out_text
    code = main(["pairs", "--dataset", str(dataset), "--model", str(model), "--out", str(out), "--num-samples", "5"])
    assert code == 2 and "holds 3 candidates per video, not --num-samples 5" in capsys.readouterr().err


def test_candidates_sampled_with_other_settings_are_not_reused(tmp_path, dataset, capsys):
    import argparse

    from ivl3_plugin.cli.pairs import PARAMS_FILE, _sampling_params

    out, model = _earlier_run(tmp_path, dataset)
    base = dict(dataset=str(dataset), model=str(model), adapters=None, template="ivl3_video", num_samples=3,
                temperature=1.0, seed=0, max_new_tokens=128, max_batch_size=4)
    (out / PARAMS_FILE).write_text(json.dumps(_sampling_params(argparse.Namespace(**base))))
    argv = ["pairs", "--dataset", str(dataset), "--model", str(model), "--out", str(out), "--num-samples", "3",
            "--no-progress"]
    assert main(argv) == 0  # the same settings: reused
    capsys.readouterr()
    assert main(argv + ["--seed", "1"]) == 2
    assert "was sampled with other settings (seed: 0; now 1): delete it to sample again" in capsys.readouterr().err
