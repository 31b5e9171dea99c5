"""Typed inputs: summaries and ids are text, a list of summaries is several references, options have ranges.

Real ``ivl3 convert`` runs on the bundled mp4s (decord); nothing is stringified behind the user's back:
a value that is not an id or a summary is a skipped row with its reason, and option values that would
convert nothing useful are refused up front (exit 2, one line).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.convert.videos import copy_demo, demo_rows, write_jsonl
from ivl3_plugin.convert import ConvertError, run_convert, split_for_id
from ivl3_plugin.hosts.swift.infer import normalise_results


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ivl3_plugin", "convert", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def _jsonl(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def _videos(tmp_path, n):
    return [copy_demo(i, tmp_path / f"v{i}.mp4").name for i in range(n)]


def _id_in(split: str, fraction: float, prefix: str) -> str:
    """An id that ``split_for_id`` puts in ``split`` at ``fraction``."""
    return next(f"{prefix}{k}" for k in range(1000) if split_for_id(f"{prefix}{k}", fraction) == split)


@pytest.fixture(scope="module")
def typed_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("typed")
    v = _videos(d, 9)
    s = [r["summary"] for r in demo_rows(9)]
    train_id, val_id = _id_in("train", 0.5, "multi-train-"), _id_in("val", 0.5, "multi-val-")
    rows = [
        {"id": train_id, "video": v[0], "summary": ["First reference.", "  Second reference. ", "Third one."]},
        {"id": val_id, "video": v[1], "summary": ["Val reference A.", "Val reference B."]},
        {"id": 7, "video": v[2], "summary": s[2]},                       # an integer id: its decimal string
        {"id": 1.5, "video": v[3], "summary": s[3]},                     # a float id: refused
        {"id": True, "video": v[4], "summary": s[4]},                    # a boolean id: refused
        {"id": {"k": 1}, "video": v[5], "summary": s[5]},                # an object id: refused
        {"id": "num", "video": v[6], "summary": 42},                     # a number summary: refused
        {"id": "obj", "video": v[6], "summary": {"text": "x"}},          # an object summary: refused
        {"id": "nested", "video": v[7], "summary": ["ok", ["nested"]]},  # a list holding a list: refused
        {"id": "blank-item", "video": v[7], "summary": ["ok", "  "]},    # an empty reference: refused
        {"id": "empty-list", "video": v[7], "summary": []},
        {"id": "vid-list", "video": [v[8]], "summary": s[8]},            # a list as the video path: refused
        {"id": "start", "video": v[8], "summary": s[8], "start": True},  # a boolean clip start: refused
        {"id": f"{train_id}#2", "video": v[8], "summary": s[8]},        # the id of row 1's second reference
    ]
    ann = write_jsonl(d / "ann.jsonl", rows)
    proc = _cli(ann, "-o", d / "out", "--cache-dir", d / "cache", "--num-frames", "2", "-j", "0",
                "--val-fraction", "0.5")
    skipped = {(r["row"]): r for r in _jsonl(d / "out" / "skipped.jsonl")}
    return proc, d / "out", skipped, train_id, val_id


def test_exit_status_and_converted_rows(typed_run):
    proc, out, skipped, train_id, val_id = typed_run
    assert proc.returncode == 1, proc.stderr  # some rows skipped
    assert [s["id"] for s in _jsonl(out / "samples.jsonl")] == [train_id, val_id, "7"]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("row, reason", [
    (4, "id must be a string or an integer, got a number (1.5)"),
    (5, "id must be a string or an integer, got true/false (true)"),
    (6, "id must be a string or an integer, got an object"),
    (7, "summary must be text or a list of texts, got a number (42)"),
    (8, "summary must be text or a list of texts, got an object"),
    (9, "summary list item 2 is a list (1 item), not text"),
    (10, "summary list item 2 is empty"),
    (11, "empty summary (an empty list)"),
    (12, "video path must be text, got a list (1 item)"),
    (13, "clip 'start' is not a number of seconds (True)"),
])
def test_values_that_are_not_text_are_refused_per_row(typed_run, row, reason):
    proc, out, skipped, _, _ = typed_run
    assert skipped[row]["reason"] == reason
    assert f"ann.jsonl:{row} " in proc.stderr and reason in proc.stderr


def test_the_ids_of_extra_references_are_reserved(typed_run):
    _, _, skipped, train_id, _ = typed_run
    assert skipped[14]["reason"] == f"duplicate id '{train_id}#2' (first used at ann.jsonl:1, its reference 2)"


def test_no_row_trains_on_a_python_repr(typed_run):
    _, out, _, _, _ = typed_run
    text = "".join((out / f).read_text() for f in ("swift/train.jsonl", "swift/val.jsonl", "internvl/train.jsonl",
                                                   "llamafactory/train.json"))
    assert "['" not in text and "{'" not in text and "1.5" not in text


def test_several_summaries_train_one_row_each(typed_run):
    _, out, _, train_id, _ = typed_run
    train = [r for r in _jsonl(out / "swift" / "train.jsonl") if r["id"].startswith(train_id)]
    assert [r["id"] for r in train] == [train_id, f"{train_id}#2", f"{train_id}#3"]
    assert [r["messages"][1]["content"] for r in train] == ["First reference.", "Second reference.", "Third one."]
    assert len({json.dumps(r["videos"]) for r in train}) == 1  # the same frames for each reference
    assert all("references" not in r for r in train)
    internvl = [r for r in _jsonl(out / "internvl" / "train.jsonl") if r["id"].startswith(train_id)]
    assert [r["conversations"][1]["value"] for r in internvl] == ["First reference.", "Second reference.",
                                                                  "Third one."]
    lf = json.loads((out / "llamafactory" / "train.json").read_text())
    assert sum(r["messages"][1]["content"] in ("First reference.", "Second reference.", "Third one.") for r in lf) == 3
    meta = json.loads((out / "internvl" / "meta.json").read_text())
    assert meta["ivl3_train"]["length"] == len(_jsonl(out / "internvl" / "train.jsonl"))
    report = json.loads((out / "report.json").read_text())
    seven = split_for_id("7", 0.5) == "train"  # the third converted video, id "7"
    assert (report["train"], report["train_rows"], report["val"]) == (1 + seven, 3 + seven, 2 - seven)


def test_several_summaries_stay_references_for_evaluation(typed_run):
    _, out, _, _, val_id = typed_run
    (row,) = [r for r in _jsonl(out / "swift" / "val.jsonl") if r["id"].startswith(val_id)]  # one row per video
    assert row["messages"][1]["content"] == "Val reference A."
    assert row["references"] == ["Val reference A.", "Val reference B."]
    sample = next(s for s in _jsonl(out / "samples.jsonl") if s["id"] == val_id)
    assert sample["summaries"] == ["Val reference A.", "Val reference B."] and sample["split"] == "val"
    # ivl3 predict pairs swift's results with these rows: the predictions file keeps both references
    (pred,) = normalise_results([{"response": "A shape."}], [row], "raw.jsonl")
    assert pred.references == ["Val reference A.", "Val reference B."]
    assert pred.to_json()["reference"] == ["Val reference A.", "Val reference B."]


def test_hf_dataset_carries_the_references(typed_run):
    datasets = pytest.importorskip("datasets")
    _, out, _, train_id, val_id = typed_run
    dd = datasets.load_from_disk(str(out / "hf"))
    val = {r["id"]: r for r in dd["val"]}
    assert val[val_id]["references"] == ["Val reference A.", "Val reference B."]
    assert [r["summary"] for r in dd["train"] if r["id"].startswith(train_id)] == \
        ["First reference.", "Second reference.", "Third one."]


@pytest.mark.parametrize("args, message", [
    (["--val-fraction", "2"], "argument --val-fraction: 2 is out of range: must be in [0, 1)"),
    (["--val-fraction", "1"], "argument --val-fraction: 1 is out of range: must be in [0, 1)"),
    (["--val-fraction", "-0.1"], "argument --val-fraction: -0.1 is out of range"),
    (["--val-fraction", "nan"], "argument --val-fraction: nan is out of range"),
    (["--num-frames", "0"], "argument --num-frames: 0 is out of range: must be >= 1"),
    (["--num-frames", "-4"], "argument --num-frames: -4 is out of range"),
    (["--num-frames", "2.5"], "argument --num-frames: '2.5' is not a whole number"),
    (["-j", "-1"], "argument -j/--workers: -1 is out of range: must be >= 0"),
    (["--quality", "0"], "argument --quality: 0 is out of range: JPEG quality is 1..100"),
    (["--sampling", "fps", "--fps", "0"], "argument --fps: 0 is out of range: must be > 0"),
    (["--frame-size", "0"], "argument --frame-size: 0 is out of range"),
    (["--shard", "3/2"], "--shard 3/2: need 0 <= i < N"),
])
def test_option_values_out_of_range_exit_2(tmp_path, args, message):
    ann = write_jsonl(tmp_path / "a.jsonl", [{"video": "v.mp4", "summary": "x"}])
    proc = _cli(ann, "-o", tmp_path / "out", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 2}, "val_fraction must be in [0, 1)"),
    ({"val_fraction": 1.0}, "val_fraction must be in [0, 1)"),
    ({"num_frames": 0}, "num_frames must be a whole number >= 1"),
    ({"workers": -1}, "workers must be >= 0"),
    ({"sampling": "fps", "fps": 0}, "fps must be > 0"),
])
def test_the_api_refuses_the_same_values(tmp_path, kwargs, message):
    ann = write_jsonl(tmp_path / "a.jsonl", [{"video": "v.mp4", "summary": "x"}])
    with pytest.raises(ConvertError, match=message.replace("[", r"\[").replace(")", r"\)")):
        run_convert(ann, tmp_path / "out", **kwargs)


def test_an_empty_folder_is_an_error_not_an_empty_dataset(tmp_path):
    (tmp_path / "videos").mkdir()
    proc = _cli(tmp_path / "videos", "-o", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ivl3 convert: error: {tmp_path / 'videos'}: no rows (no video files in the folder)"


def test_a_run_where_every_row_is_skipped_exits_2_after_listing_them(tmp_path):
    ann = write_jsonl(tmp_path / "a.jsonl", [{"id": "a", "video": "nowhere.mp4", "summary": "x"},
                                             {"id": "b", "video": "nowhere2.mp4", "summary": "y"}])
    proc = _cli(ann, "-o", tmp_path / "out", "--cache-dir", tmp_path / "cache", "-j", "0")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("ivl3 convert: error: no row converted: all 2 rows were skipped (reasons in ")
    assert "first: a.jsonl:1: video file not found" in lines[-1]
    assert sum("skipped" in l and "video file not found" in l for l in lines[:-1]) == 2
    assert len(_jsonl(tmp_path / "out" / "skipped.jsonl")) == 2  # the reasons are kept


def test_an_empty_train_split_is_a_warning(tmp_path):
    v = _videos(tmp_path, 1)
    only = _id_in("val", 0.9, "solo-")
    ann = write_jsonl(tmp_path / "a.jsonl", [{"id": only, "video": v[0], "summary": "x"}])
    proc = _cli(ann, "-o", tmp_path / "out", "--cache-dir", tmp_path / "cache", "-j", "0", "--num-frames", "2",
                "--val-fraction", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert "warning: the train split is empty: all 1 converted rows fell in val (--val-fraction 0.9)" in proc.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["warnings"]


def test_a_split_column_beats_the_hash_and_a_bad_one_names_its_row(tmp_path):
    v = _videos(tmp_path, 4)
    hashed_val, hashed_train = _id_in("val", 0.5, "h-"), _id_in("train", 0.5, "h-")
    ann = write_jsonl(tmp_path / "a.jsonl", [
        {"id": hashed_val, "video": v[0], "summary": "kept for training", "split": "train"},
        {"id": hashed_train, "video": v[1], "summary": "held out", "split": "Validation"},
        {"id": "no-split", "video": v[2], "summary": "the hash decides", "split": ""},
        {"id": "typo", "video": v[3], "summary": "x", "split": "tran"},
    ])
    proc = _cli(ann, "-o", tmp_path / "out", "--cache-dir", tmp_path / "cache", "-j", "0", "--num-frames", "2",
                "--val-fraction", "0.5")
    assert proc.returncode == 1, proc.stderr  # one row skipped
    assert "a.jsonl:4" in proc.stderr and "'split' must be train or val" in proc.stderr and "'tran'" in proc.stderr
    split = {s["id"]: s["split"] for s in _jsonl(tmp_path / "out" / "samples.jsonl")}
    assert split == {hashed_val: "train", hashed_train: "val", "no-split": split_for_id("no-split", 0.5)}
    assert [r["id"] for r in _jsonl(tmp_path / "out" / "swift" / "val.jsonl")] == \
        [i for i in (hashed_train, "no-split") if split[i] == "val"]
