"""The frame cache cannot be corrupted by a user: datasets get copies, and every cache hit is checked.

Real ``ivl3 convert`` runs (subprocess, decord on the bundled mp4s).  An edit *in place* (same inode,
as an image editor or ``open(..., "r+b")`` does) of a dataset's frame must not reach the cache or a
later dataset; an edit inside the cache itself must be detected, decoded again and reported.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.convert.videos import copy_demo, demo_rows, write_jsonl
from ivl3_plugin.convert import cache as cache_mod
from ivl3_plugin.convert.cache import clone_file


def _convert(ann, out, cache, *extra):
    return subprocess.run([sys.executable, "-m", "ivl3_plugin", "convert", str(ann), "-o", str(out), "--cache-dir",
                           str(cache), "--num-frames", "3", "-j", "0", "--formats", "swift", "--no-progress",
                           "--val-fraction", "0", *map(str, extra)], capture_output=True, text=True, timeout=600)


def _frames(out):
    return [json.loads(l) for l in (Path(out) / "samples.jsonl").read_text().splitlines()][0]["frames"]


def _scribble(path: Path) -> None:
    """Overwrite bytes in the middle of the file in place (the inode stays the same)."""
    inode = path.stat().st_ino
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(b"\xff" * 64)
    assert path.stat().st_ino == inode


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def _cache_entry(cache: Path) -> Path:
    (meta,) = [p for p in cache.rglob("meta.json") if "tmp" not in p.relative_to(cache).parts]
    return meta.parent


@pytest.fixture()
def one_video(tmp_path):
    video = copy_demo(0, tmp_path / "v.mp4")
    return write_jsonl(tmp_path / "a.jsonl", [{"id": "v", "video": video.name, "summary": demo_rows(1)[0]["summary"]}])


def test_editing_a_converted_frame_never_reaches_the_cache(tmp_path, one_video):
    cache = tmp_path / "cache"
    first = _convert(one_video, tmp_path / "one", cache)
    assert first.returncode == 0, first.stderr
    frame = Path(_frames(tmp_path / "one")[0])
    entry = _cache_entry(cache)
    cached = entry / frame.name
    assert not os.path.samefile(frame, cached)  # a copy, not a hard link into the cache
    original_bytes, original_pixels = frame.read_bytes(), _pixels(frame)

    _scribble(frame)  # the user "fixes" a frame of their dataset in place
    assert frame.read_bytes() != original_bytes
    assert cached.read_bytes() == original_bytes  # the cache kept the decoded frame

    second = _convert(one_video, tmp_path / "two", cache)
    assert second.returncode == 0, second.stderr
    assert "0 decoded, 1 from cache" in second.stdout and "cache:" not in second.stderr
    copy = Path(_frames(tmp_path / "two")[0])
    assert copy.read_bytes() == original_bytes
    assert np.array_equal(_pixels(copy), original_pixels)
    assert json.loads((tmp_path / "two" / "report.json").read_text())["cache_repaired"] == []


def test_an_edit_inside_the_cache_is_detected_decoded_again_and_reported(tmp_path, one_video):
    cache = tmp_path / "cache"
    assert _convert(one_video, tmp_path / "one", cache).returncode == 0
    good = [Path(p).read_bytes() for p in _frames(tmp_path / "one")]
    entry = _cache_entry(cache)
    meta = json.loads((entry / "meta.json").read_text())
    assert set(meta["sha256"]) == set(meta["frames"])  # checksums written with the entry
    victim = entry / meta["frames"][1]
    _scribble(victim)

    second = _convert(one_video, tmp_path / "two", cache)
    assert second.returncode == 0, second.stderr  # the row converted correctly: no skip
    assert "1 decoded, 0 from cache" in second.stdout
    assert f"cache: v: cache frame {victim} was modified after it was written; decoded again" in second.stderr
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert report["cache_repaired"] == [{"id": "v", "video": str(tmp_path / "v.mp4"),
                                         "reason": f"cache frame {victim} was modified after it was written"}]
    assert [Path(p).read_bytes() for p in _frames(tmp_path / "two")] == good  # the true frames, not the edit
    # the entry was rewritten: its files match their checksums again, and the next run is a clean hit
    meta = json.loads((entry / "meta.json").read_text())
    assert all(hashlib.sha256((entry / n).read_bytes()).hexdigest() == h for n, h in meta["sha256"].items())
    third = _convert(one_video, tmp_path / "three", cache)
    assert third.returncode == 0 and "0 decoded, 1 from cache" in third.stdout and "cache:" not in third.stderr


def test_a_deleted_cache_frame_is_decoded_again(tmp_path, one_video):
    cache = tmp_path / "cache"
    assert _convert(one_video, tmp_path / "one", cache).returncode == 0
    entry = _cache_entry(cache)
    (entry / json.loads((entry / "meta.json").read_text())["frames"][0]).unlink()
    second = _convert(one_video, tmp_path / "two", cache)
    assert second.returncode == 0 and "is missing; decoded again" in second.stderr, second.stderr
    assert all(Path(p).is_file() for p in _frames(tmp_path / "two"))


def test_an_entry_of_an_older_ivl3_without_checksums_is_decoded_again_quietly(tmp_path, one_video):
    """Older versions hard-linked frames into datasets, so their entries may carry a user's edits."""
    cache = tmp_path / "cache"
    assert _convert(one_video, tmp_path / "one", cache).returncode == 0
    entry = _cache_entry(cache)
    meta = json.loads((entry / "meta.json").read_text())
    del meta["sha256"]
    (entry / "meta.json").write_text(json.dumps(meta))
    _scribble(entry / meta["frames"][0])
    second = _convert(one_video, tmp_path / "two", cache)
    assert second.returncode == 0 and "1 decoded, 0 from cache" in second.stdout and "cache:" not in second.stderr
    assert "sha256" in json.loads((entry / "meta.json").read_text())
    assert [Path(p).read_bytes() for p in _frames(tmp_path / "two")] == \
        [Path(p).read_bytes() for p in _frames(tmp_path / "one")]  # the first run's copies: the true frames


def test_clone_file_makes_an_independent_copy(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    dst = tmp_path / "dst.bin"
    how = clone_file(src, dst)
    assert how in ("reflink", "copy_file_range", "copy")
    assert dst.read_bytes() == src.read_bytes() and not os.path.samefile(src, dst)
    before = src.read_bytes()
    _scribble(dst)
    assert src.read_bytes() == before


def test_clone_file_falls_back_to_a_plain_copy(tmp_path, monkeypatch):
    """No reflinks (ext4, tmpfs) and no copy_file_range (old kernel, odd filesystem): still a copy."""
    import fcntl

    def no_ioctl(*a):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    def no_range(*a):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "ioctl", no_ioctl)
    monkeypatch.setattr(os, "copy_file_range", no_range, raising=False)
    monkeypatch.setattr(cache_mod, "_reflink_works", {})
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(70_000))
    assert clone_file(src, tmp_path / "dst.bin") == "copy"
    assert (tmp_path / "dst.bin").read_bytes() == src.read_bytes()
    assert list(cache_mod._reflink_works.values()) == [False]  # not tried again on this device pair
