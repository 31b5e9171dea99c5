"""The resume log: one JSON line per finished item, appended and fsync'd as each item finishes.

After ``kill -9`` the last line may be cut short; it is dropped (and cut off the
file) on the next run, so that item is simply done again.  Each shard appends
to its own file, so nodes sharing a filesystem never write the same file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterator


def manifest_dir(out: Path) -> Path:
    return Path(out) / "manifest"


def shard_file(out: Path, shard: int, num_shards: int) -> Path:
    return manifest_dir(out) / f"{shard}-of-{num_shards}.jsonl"


def _records(path: Path) -> Iterator[dict]:
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # a line cut short by a kill: not a record
            try:
                yield json.loads(line)
            except ValueError:
                continue


def load_results(out: Path) -> Dict[str, dict]:
    """Every record of every shard, the newest per id."""
    results: Dict[str, dict] = {}
    for path in sorted(manifest_dir(out).glob("*.jsonl")):
        for rec in _records(path):
            if "id" in rec:
                results[rec["id"]] = rec
    return results


class ManifestWriter:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_partial_tail()
        self._f = open(self.path, "ab")

    def _drop_partial_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, record: dict) -> None:
        self._f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
