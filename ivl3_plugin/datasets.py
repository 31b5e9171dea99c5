"""Named, ready datasets: a converted directory plus the split files hosts read."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict


@dataclass(frozen=True)
class DatasetSpec:
    """A converted dataset usable as ``--dataset NAME``.

    ``splits`` maps a split name to a file relative to ``path`` (ms-swift JSONL).
    """

    path: Path
    splits: Dict[str, str] = field(default_factory=lambda: {"train": "swift/train.jsonl", "val": "swift/val.jsonl"})
    description: str = ""

    def split_file(self, split: str) -> Path:
        if split not in self.splits:
            raise KeyError(f"dataset at {self.path} has no split {split!r}; it has {sorted(self.splits)}")
        return Path(self.path) / self.splits[split]
