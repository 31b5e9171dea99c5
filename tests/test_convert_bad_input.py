"""Bad and awkward input: every case lands in the skipped report with its reason, or converts correctly.

One ``ivl3 convert`` run (real CLI, 2 worker processes) over a mix of good rows and every
bad case; the run completes, all good rows convert, and the exit status says something was skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fixtures.convert.videos import (copy_demo, demo_rows, numbered_frames, truncated_copy, write_audio_only,
                                     write_jsonl, write_video)
from ivl3_plugin.convert import run_convert
from ivl3_plugin.convert.runner import process_item as real_process_item

VFR_PTS = [0, 1, 2, 3, 10, 11, 12, 30, 31, 32, 33, 34]  # in 1/8 s


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ivl3_plugin", "convert", *map(str, args)], capture_output=True,
                          text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    v = d / "videos"
    v.mkdir()
    good = {f"good{k}": copy_demo(k, v / f"good{k}.mp4") for k in range(3)}
    (v / "zero.mp4").write_bytes(b"")
    truncated_copy(good["good0"], v / "cut_moov.mp4", 0.6)  # the index (moov) is at the end: gone
    write_video(v / "faststart.mp4", numbered_frames(48), faststart=True)
    truncated_copy(v / "faststart.mp4", v / "cut_data.mp4", 0.5)  # index first, half the frames gone
    (v / "notes.mp4").write_text("this is not a video\n" * 40)
    write_audio_only(v / "audio.mp4")
    write_video(v / "single.mp4", numbered_frames(1))
    write_video(v / "rotated.mp4", numbered_frames(12), rotation=90)
    write_video(v / "vfr.mp4", numbered_frames(12), pts=VFR_PTS, time_base=Fraction(1, 8))
    copy_demo(4, v / "vidéo 猫 ü.mp4")
    (v / "folder.mp4").mkdir()
    s = list(dict.fromkeys(r["summary"] for r in demo_rows()))[:6]  # six different sentences
    rows = [
        {"id": "good0", "video": "good0.mp4", "summary": s[0]},
        {"id": "zero", "video": "zero.mp4", "summary": "x"},
        {"id": "cut_moov", "video": "cut_moov.mp4", "summary": "x"},
        {"id": "cut_data", "video": "cut_data.mp4", "summary": "x"},
        {"id": "notes", "video": "notes.mp4", "summary": "x"},
        {"id": "missing", "video": "nowhere.mp4", "summary": "x"},
        {"id": "folder", "video": "folder.mp4", "summary": "x"},
        {"id": "audio", "video": "audio.mp4", "summary": "x"},
        {"id": "single", "video": "single.mp4", "summary": "one frame"},
        {"id": "rotated", "video": "rotated.mp4", "summary": "turned"},
        {"id": "vfr", "video": "vfr.mp4", "summary": "uneven"},
        {"id": "unicode", "video": "vidéo 猫 ü.mp4", "summary": "ünïcödé ✓"},
        {"id": "blank", "video": "good1.mp4", "summary": "   "},
        {"id": "nosummary", "video": "good1.mp4"},
        {"id": "good0", "video": "good2.mp4", "summary": s[1]},
        {"id": "good2", "video": "good2.mp4", "summary": s[2]},
        {"id": "good2_again", "video": "good2.mp4", "summary": s[2]},
        {"id": "same_words", "video": "good0.mp4", "summary": s[2]},
        {"id": "late_clip", "video": "good0.mp4", "summary": s[0], "start": 50, "end": 60},
        {"id": "backwards", "video": "good0.mp4", "summary": s[0], "start": 2, "end": 1},
    ]
    ann = d / "ann.jsonl"
    write_jsonl(ann, rows)
    with open(ann, "a") as f:
        f.write('{"id": "broken json", "video": \n')
    proc = _cli(ann, "-o", d / "out", "--video-root", v, "--cache-dir", d / "cache", "--num-frames", "4",
                "--image-format", "png", "-j", "2", "--no-progress", "--formats", "swift")
    skipped = {r["id"]: r for r in map(json.loads, (d / "out" / "skipped.jsonl").read_text().splitlines())}
    samples = {r["id"]: r for r in map(json.loads, (d / "out" / "samples.jsonl").read_text().splitlines())}
    return proc, skipped, samples, d


EXPECTED_SKIPS = {
    "zero": "empty file", "cut_moov": "Invalid data", "cut_data": "truncated", "notes": "Invalid data",
    "missing": "video file not found", "folder": "not a regular file", "audio": "no video stream",
    "good0": "duplicate id 'good0'", "blank": "empty summary", "nosummary": "empty summary", "good2_again": "duplicate row",
    "late_clip": "after the video ends", "backwards": "not after its start",
}


def test_run_completes_and_exit_status_says_skipped(bad_run):
    proc, skipped, samples, d = bad_run
    assert proc.returncode == 1, proc.stderr
    assert "skipped" in proc.stderr and "converted" in proc.stdout


@pytest.mark.parametrize("key,reason", sorted(EXPECTED_SKIPS.items()))
def test_each_bad_case_is_skipped_with_its_reason(bad_run, key, reason):
    _, skipped, samples, _ = bad_run
    assert key in skipped, sorted(skipped)
    assert reason in skipped[key]["reason"]
    assert skipped[key]["file"].endswith("ann.jsonl") and isinstance(skipped[key]["row"], int)


def test_skipped_report_names_file_and_row(bad_run):
    _, skipped, samples, _ = bad_run
    rows = {r["row"]: r for r in skipped.values()}
    assert rows[2]["id"] == "zero" and rows[21]["reason"].startswith("invalid JSON")
    assert rows[15]["id"] == "good0" and "duplicate id" in rows[15]["reason"]
    assert len(skipped) == len(EXPECTED_SKIPS) + 1  # + the broken JSON line (id None)


def test_all_good_and_awkward_rows_convert(bad_run):
    _, skipped, samples, _ = bad_run
    assert sorted(samples) == sorted(["good0", "good2", "single", "rotated", "vfr", "unicode", "same_words"])
    assert samples["good2"]["summary"] == samples["same_words"]["summary"]  # same words, other video: kept


def test_single_frame_video_repeats_its_frame(bad_run):
    s = bad_run[2]["single"]
    assert s["indices"] == [0, 0, 0, 0] and len(set(s["frames"])) == 1 and Path(s["frames"][0]).is_file()


def test_rotated_video_frames_are_upright(bad_run):
    from PIL import Image

    s = bad_run[2]["rotated"]
    src = numbered_frames(12)
    for idx, path in zip(s["indices"], s["frames"]):
        got = np.asarray(Image.open(path).convert("RGB")).astype(int)
        assert got.shape == (64, 48, 3)  # 64x48 stored, shown turned 90 degrees
        assert np.abs(got - np.rot90(src[idx])).max() <= 8


def test_variable_frame_rate_keeps_true_timestamps(bad_run):
    s = bad_run[2]["vfr"]
    assert s["timestamps"] == pytest.approx([VFR_PTS[i] / 8 for i in s["indices"]], abs=1e-3)


def test_unicode_names_round_trip(bad_run):
    s = bad_run[2]["unicode"]
    assert s["source"].endswith("vidéo 猫 ü.mp4") and s["summary"] == "ünïcödé ✓"
    swift = (bad_run[3] / "out" / "swift").glob("*.jsonl")
    assert any("ünïcödé ✓" in p.read_text(encoding="utf-8") for p in swift)


def test_unique_summaries_option(tmp_path):
    rows = [{"id": f"v{k}", "video": str(copy_demo(k, tmp_path / f"v{k}.mp4")), "summary": "Same words."}
            for k in range(2)]
    res = run_convert(write_jsonl(tmp_path / "a.jsonl", rows), tmp_path / "o", num_frames=2,
                      cache_dir=tmp_path / "c", formats=["swift"], unique_summaries=True)
    assert res.converted == 1 and "duplicate summary" in res.skipped[0]["reason"]


def test_unreadable_file(tmp_path):
    """A file without read permission is skipped.  Root reads anything, so as root the run is started
    without the capabilities that bypass file permissions (``setpriv --bounding-set``)."""
    copy_demo(0, tmp_path / "ok.mp4")
    locked = copy_demo(1, tmp_path / "locked.mp4")
    os.chmod(locked, 0o000)
    ann = write_jsonl(tmp_path / "a.jsonl", [{"video": "ok.mp4", "summary": "fine"},
                                             {"video": "locked.mp4", "summary": "no access"}])
    argv = [sys.executable, "-m", "ivl3_plugin", "convert", str(ann), "-o", str(tmp_path / "out"), "--cache-dir",
            str(tmp_path / "cache"), "--num-frames", "2", "-j", "0", "--formats", "swift", "--no-progress"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    skipped = [json.loads(l) for l in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == 1 and skipped[0]["id"] == "locked" and "permission" in skipped[0]["reason"].lower()
    assert [json.loads(l)["id"] for l in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()] == ["ok"]


def _crash_on_poison(item, cfg):
    if item.id == "poison":
        os._exit(139)  # what a decoder segfault looks like to the pool
    return real_process_item(item, cfg)


def test_a_crashing_decoder_skips_only_that_video(tmp_path, monkeypatch):
    import ivl3_plugin.convert.runner as runner

    rows = [{"id": name, "video": str(copy_demo(k, tmp_path / f"{name}.mp4")), "summary": f"s{k}"}
            for k, name in enumerate(["a", "b", "poison", "c", "d"])]
    monkeypatch.setattr(runner, "process_item", _crash_on_poison)
    res = run_convert(write_jsonl(tmp_path / "a.jsonl", rows), tmp_path / "o", num_frames=2, workers=2,
                      cache_dir=tmp_path / "c", formats=["swift"])
    assert res.converted == 4
    assert [(s["id"], s["reason"]) for s in res.skipped] == [("poison", "the decoder crashed its worker process")]


class _PoolBrokenAtSecondSubmit:
    """A pool whose worker dies between ``wait`` and the next ``submit``: the first task completes, the next
    submit raises BrokenProcessPool (the race a real crash can hit).  Later pools run tasks in this process."""
    pools = 0

    def __init__(self, *a, **k):
        type(self).pools += 1
        self.first = type(self).pools == 1
        self.submitted = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        self.submitted += 1
        if self.first and self.submitted == 2:
            raise BrokenProcessPool("a child process terminated abruptly")
        fut = Future()
        fut.set_result(fn(*args))
        return fut


def test_a_pool_broken_between_tasks_loses_and_repeats_nothing(tmp_path, monkeypatch):
    import ivl3_plugin.convert.runner as runner

    rows = [{"id": name, "video": str(copy_demo(k, tmp_path / f"{name}.mp4")), "summary": f"s{k}"}
            for k, name in enumerate(["a", "b", "c"])]
    monkeypatch.setattr(runner, "ProcessPoolExecutor", _PoolBrokenAtSecondSubmit)
    res = run_convert(write_jsonl(tmp_path / "a.jsonl", rows), tmp_path / "o", num_frames=2, workers=1,
                      cache_dir=tmp_path / "c", formats=["swift"])
    assert res.converted == 3 and res.skipped == []
    ids = [json.loads(line)["id"] for line in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["a", "b", "c"]
