"""The ``sidecar-folder`` dataset source: videos with a ``.txt`` summary beside each.

Layout::

    my_videos/
      kitchen/cut_onions.mp4
      kitchen/cut_onions.txt      # "clip: 2.0-9.5" (optional first line), then the summary
      walk.mp4
      walk.txt

A source only reads: it yields one :class:`SourceRow` per video and, when a
row is unusable, sets ``problem`` instead of raising, so ``ivl3 convert``
can list it in its skipped report with the file and row number.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Optional, Tuple

from ivl3_plugin.api import DatasetSource, SourceRow

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
_CLIP = re.compile(r"^clip:\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$", re.IGNORECASE)


def parse_sidecar(text: str) -> Tuple[Optional[Tuple[float, float]], str]:
    """Split a sidecar into (clip or None, summary)."""
    lines = text.strip().splitlines()
    clip = None
    if lines:
        m = _CLIP.match(lines[0].strip())
        if m:
            clip = (float(m.group(1)), float(m.group(2)))
            lines = lines[1:]
    return clip, "\n".join(lines).strip()


class SidecarFolder(DatasetSource):
    description = "a folder of videos, each with a <stem>.txt summary (optional 'clip: START-END' first line)"

    def sniff(self, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and any(
            v.with_suffix(".txt").is_file() for v in path.rglob("*") if v.suffix.lower() in VIDEO_SUFFIXES
        )

    def read(self, path: Path, **_) -> Iterator[SourceRow]:
        path = Path(path)
        videos = sorted(v for v in path.rglob("*") if v.suffix.lower() in VIDEO_SUFFIXES)
        for n, video in enumerate(videos, 1):
            row = SourceRow(file=str(path), row=n, video=str(video),
                            id=video.relative_to(path).with_suffix("").as_posix().replace("/", "__"))
            sidecar = video.with_suffix(".txt")
            if not sidecar.is_file():
                row.problem = f"no summary file {sidecar.name} beside {video.name}"
            else:
                row.clip, row.summary = parse_sidecar(sidecar.read_text(encoding="utf-8"))
                if not row.summary:
                    row.problem = f"{sidecar.name} holds no summary"
                elif row.clip and row.clip[1] <= row.clip[0]:
                    row.problem = f"{sidecar.name}: clip end {row.clip[1]} is not after start {row.clip[0]}"
            yield row
