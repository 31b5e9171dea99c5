"""Planned sample lengths kept on disk, so a resumed run (or another run on the same data and settings)
skips the length pass of ``ivl3_length_group`` (one text encode per row: minutes on a 100k-row dataset).

What the key covers, and why it is enough (a stale entry is never used):

* every row's content, in order: the SHA-256 of each row's JSON (sorted keys; ``bytes`` by their hash).
  Hashing the rows the trainer holds, not the dataset file's path/size/mtime, also covers what ms-swift
  did to them after loading (column renames, ``--dataset name#N`` sampling, shuffles, several files);
  it costs one JSON dump per row, far less than an encode;
* the files a row names whose contents change a length although the row does not (:func:`media_stamps`):
  a frame folder (its listing is the frame count; stamped by its mtime), a video file and an image
  (size and mtime), and each frame file when frames may have several tiles (its size decides the count);
* the host's fingerprint of the tokenizer and template settings (max_length, frames/tiles, prompt...),
  passed in as plain data (``hosts/swift/length_group.py`` builds it).

An entry is one JSON file ``<key>.json`` in ``$IVL3_HOME/cache/lengths`` (the frame cache's sibling),
written to a temporary file and renamed into place: ranks that all miss compute the same lengths and
each rename a complete file; a reader sees a whole file or none.  An unreadable or mismatched file is
reported, recomputed and replaced.  Deleting the folder clears the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple

from ..settings import home
from ..shared.atomic import write_text_atomic

CACHE_VERSION = 1
log = logging.getLogger("ivl3_plugin.length_cache")


def default_cache_dir() -> Path:
    return home() / "cache" / "lengths"


def _json_default(value: Any):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"sha256": hashlib.sha256(bytes(value)).hexdigest()}
    return repr(value)


def _stamp(path: str, what: str):
    try:
        st = os.stat(path)
    except OSError:
        return [what, path, None]  # missing: the encode reports it; the stamp changes once it appears
    return [what, path, st.st_size, st.st_mtime_ns]


def _sources(entry: Any) -> Iterable[str]:
    if isinstance(entry, dict):  # a host's {'bytes', 'path'} image record (bytes are in the row's hash)
        entry = entry.get("path")
    if isinstance(entry, (str, os.PathLike)):
        yield os.fspath(entry)


def media_stamps(row: Mapping[str, Any], stat_frames: bool) -> list:
    """Stamps of the files ``row`` names whose content decides its length without changing the row.

    A frame *list* fixes the frame count in the row itself, so its frames are stamped only when
    ``stat_frames`` (frames may have several tiles: a frame's size decides its tile count)."""
    out = []
    for entry in row.get("images") or []:
        out += [_stamp(p, "image") for p in _sources(entry)]
    for entry in row.get("videos") or []:
        if isinstance(entry, (list, tuple)):
            if stat_frames:
                out += [_stamp(p, "frame") for f in entry for p in _sources(f)]
        else:
            out += [_stamp(p, "folder" if os.path.isdir(p) else "video") for p in _sources(entry)]
    return out


def rows_digest(rows, stat_frames: bool = False) -> str:
    """One hash of every row's content (in order) and of the files it names (:func:`media_stamps`)."""
    h = hashlib.sha256()
    for row in rows:  # in index order; an HF dataset iterates in batches, about twice as fast as rows[i]
        h.update(json.dumps([row, media_stamps(row, stat_frames)], sort_keys=True, default=_json_default,
                            ensure_ascii=True).encode())
        h.update(b"\n")  # ensure_ascii JSON holds no raw newline: the rows cannot run into each other
    return h.hexdigest()


def cache_key(rows_hash: str, count: int, fingerprint: Mapping[str, Any]) -> str:
    payload = {"v": CACHE_VERSION, "rows": rows_hash, "count": count, "template": fingerprint}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=_json_default).encode()).hexdigest()[:40]


def read_lengths(path: Path, key: str, count: int) -> Optional[List[int]]:
    """The cached lengths, or None when there is no entry; a damaged one is reported and ignored."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("ivl3 length group: cannot read length cache %s (%s); planning the lengths again", path, exc)
        return None
    try:
        entry = json.loads(text)
        lengths = entry["lengths"]
        ok = (entry.get("v") == CACHE_VERSION and entry.get("key") == key and isinstance(lengths, list)
              and len(lengths) == count and all(type(x) is int and x >= 0 for x in lengths))
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok:
        log.warning("ivl3 length group: ignoring damaged length cache %s (not %d lengths for this key); "
                    "planning the lengths again and replacing it", path, count)
        return None
    return lengths


def write_lengths(path: Path, key: str, lengths: List[int]) -> bool:
    """Write the entry atomically; a cache that cannot be written is reported, never fatal."""
    try:
        write_text_atomic(path, json.dumps({"v": CACHE_VERSION, "key": key, "lengths": lengths}))
    except OSError as exc:
        log.warning("ivl3 length group: cannot write length cache %s (%s); the next run plans again", path, exc)
        return False
    return True


def cached_lengths(rows, fingerprint: Mapping[str, Any], plan: Callable[[Any], int], *, stat_frames: bool = False,
                   cache_dir: Optional[Path] = None) -> Tuple[List[int], Path, bool]:
    """``(lengths, cache file, read from the cache)``: ``plan(row)`` runs for each row only on a miss."""
    key = cache_key(rows_digest(rows, stat_frames), len(rows), fingerprint)
    path = Path(cache_dir or default_cache_dir()) / f"{key}.json"
    lengths = read_lengths(path, key, len(rows))
    if lengths is not None:
        return lengths, path, True
    lengths = [int(plan(rows[i])) for i in range(len(rows))]
    write_lengths(path, key, lengths)
    return lengths, path, False
