"""Cache hits, worker processes, sharding and resume after ``kill -9`` (same outputs as one clean run)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from fixtures.convert.videos import demo_rows, demo_video, write_jsonl
from ivl3_plugin.convert import run_convert

OUTPUT_FILES = ("samples.jsonl", "swift/train.jsonl", "swift/val.jsonl", "internvl/train.jsonl",
                "llamafactory/train.json", "skipped.jsonl")


def _ann(tmp_path: Path, n: int) -> Path:
    rows = [{"id": r["id"], "video": str(demo_video(i)), "summary": r["summary"]} for i, r in enumerate(demo_rows(n))]
    return write_jsonl(tmp_path / f"ann{n}.jsonl", rows)


def _normalised(out: Path) -> dict:
    """Output files with the output folder replaced by a placeholder, so two folders compare equal."""
    return {name: (out / name).read_text().replace(str(out), "<OUT>") for name in OUTPUT_FILES}


def test_cache_hits_across_reruns_and_datasets(tmp_path, monkeypatch):
    ann = _ann(tmp_path, 4)
    cache = tmp_path / "cache"
    first = run_convert(ann, tmp_path / "a", num_frames=4, cache_dir=cache, formats=["swift"])
    assert (first.decoded, first.cache_hits) == (4, 0)

    # a second dataset sharing the videos (renamed copies, other ids): every video comes from the cache
    from ivl3_plugin.convert import decode as decode_mod

    calls = []
    real = decode_mod.decode
    monkeypatch.setattr("ivl3_plugin.convert.runner.decode", lambda *a, **k: calls.append(a) or real(*a, **k))
    copies = []
    for i, r in enumerate(demo_rows(4)):
        dest = tmp_path / "copies" / f"copy_{i}.mp4"
        dest.parent.mkdir(exist_ok=True)
        dest.write_bytes(demo_video(i).read_bytes())
        copies.append({"id": f"other_{i}", "video": str(dest), "summary": r["summary"]})
    second = run_convert(write_jsonl(tmp_path / "b.jsonl", copies), tmp_path / "b", num_frames=4, cache_dir=cache,
                         formats=["swift"])
    assert (second.decoded, second.cache_hits) == (0, 4) and calls == []
    a = [json.loads(l) for l in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    b = [json.loads(l) for l in (tmp_path / "b" / "samples.jsonl").read_text().splitlines()]
    for x, y in zip(a, b):  # same frames from one cache entry, each dataset with its own copies
        assert [Path(p).name for p in x["frames"]] == [Path(p).name for p in y["frames"]]
        assert Path(x["frames"][0]).read_bytes() == Path(y["frames"][0]).read_bytes()
        assert not os.path.samefile(x["frames"][0], y["frames"][0])

    # other sampling parameters are another cache entry
    third = run_convert(ann, tmp_path / "c", num_frames=6, cache_dir=cache, formats=["swift"])
    assert (third.decoded, third.cache_hits) == (4, 0)

    # a rerun in place resumes from the manifest: nothing decoded, nothing looked up
    again = run_convert(ann, tmp_path / "a", num_frames=4, cache_dir=cache, formats=["swift"])
    assert (again.resumed, again.decoded, again.cache_hits, again.converted) == (4, 0, 0, 4)
    assert len(calls) == 4  # only run "c" decoded


def test_workers_give_the_same_dataset_as_inline(tmp_path):
    ann = _ann(tmp_path, 6)
    inline = run_convert(ann, tmp_path / "inline", num_frames=4, cache_dir=tmp_path / "c1", workers=0)
    pooled = run_convert(ann, tmp_path / "pooled", num_frames=4, cache_dir=tmp_path / "c2", workers=2)
    assert inline.converted == pooled.converted == 6
    assert _normalised(inline.out_dir) == _normalised(pooled.out_dir)


def test_shards_split_the_work_and_the_last_one_writes_the_dataset(tmp_path):
    ann = _ann(tmp_path, 8)
    whole = run_convert(ann, tmp_path / "whole", num_frames=4, cache_dir=tmp_path / "c1")
    out = tmp_path / "sharded"
    r0 = run_convert(ann, out, num_frames=4, cache_dir=tmp_path / "c2", shard=(0, 3))
    assert not r0.complete and not (out / "samples.jsonl").exists()
    r1 = run_convert(ann, out, num_frames=4, cache_dir=tmp_path / "c2", shard=(1, 3))
    r2 = run_convert(ann, out, num_frames=4, cache_dir=tmp_path / "c2", shard=(2, 3))
    done = [r0.decoded, r1.decoded, r2.decoded]
    assert sum(done) == 8 and max(done) < 8  # each video decoded by exactly one shard
    assert not r1.complete and r2.complete and r2.converted == 8
    assert _normalised(whole.out_dir) == _normalised(out)
    assert sorted(p.name for p in (out / "manifest").iterdir()) == ["0-of-3.jsonl", "1-of-3.jsonl", "2-of-3.jsonl"]


def _cli(ann: Path, out: Path, cache: Path, *extra):
    return [sys.executable, "-m", "ivl3_plugin", "convert", str(ann), "-o", str(out), "--cache-dir", str(cache),
            "--num-frames", "16", "--image-format", "png", "--no-progress", *extra]


def _processes_mentioning(text: str) -> list:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append((int(entry.name), cmd))
    return found


def _wait_until_none_mention(text: str, timeout: float = 10.0) -> list:
    deadline = time.time() + timeout
    while (left := _processes_mentioning(text)) and time.time() < deadline:
        time.sleep(0.1)
    return left


def test_resume_after_sigkill_gives_the_same_outputs(tmp_path):
    ann = _ann(tmp_path, 24)
    out, cache = tmp_path / "killed", tmp_path / "cache-killed"
    log = out / "manifest" / "0-of-1.jsonl"
    proc = subprocess.Popen(_cli(ann, out, cache, "-j", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the converter finished before it could be killed"
    proc.send_signal(signal.SIGKILL)  # the parent only: its worker must not outlive it
    proc.wait()
    assert _wait_until_none_mention(str(out)) == [], "a worker process outlived the killed converter"
    done_before = log.read_bytes().count(b"\n")
    assert 3 <= done_before < 24 and not (out / "samples.jsonl").exists()

    resumed = subprocess.run(_cli(ann, out, cache, "-j", "1"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_before} resumed" in resumed.stdout

    clean = subprocess.run(_cli(ann, tmp_path / "clean", tmp_path / "cache-clean", "-j", "0"), capture_output=True,
                           text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr
    assert _normalised(out) == _normalised(tmp_path / "clean")
    samples = [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24 and len({s["id"] for s in samples}) == 24  # no duplicate rows


def test_cli_frame_size_with_max_short_side_is_a_clear_error(tmp_path):
    ann = _ann(tmp_path, 1)
    proc = subprocess.run(_cli(ann, tmp_path / "o", tmp_path / "c", "--frame-size", "448", "--max-short-side", "448"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "frame_size and max_short_side exclude each other" in proc.stderr
    assert not (tmp_path / "o" / "samples.jsonl").exists()


def test_cli_frame_size_writes_tile_sized_frames(tmp_path):
    from PIL import Image

    ann = _ann(tmp_path, 2)
    proc = subprocess.run(_cli(ann, tmp_path / "o", tmp_path / "c", "--frame-size", "56", "--val-fraction", "0"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert {Image.open(f).size for r in rows for f in r["frames"]} == {(56, 56)}
