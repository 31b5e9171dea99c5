"""Turn source rows into work items: resolve paths, give ids, refuse bad rows with a reason.

Planning is cheap (no decoding, no hashing) and deterministic, so every shard
and every resumed run computes the same plan and the same row order.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..shared.errors import id_text, type_name
from .sources import SourceRow


@dataclass
class Skip:
    file: str
    row: int
    reason: str
    id: Optional[str] = None
    video: Optional[str] = None

    def as_dict(self) -> dict:
        return {"file": self.file, "row": self.row, "id": self.id, "video": self.video, "reason": self.reason}


@dataclass
class Item:
    id: str
    order: int
    row: SourceRow
    summary: str
    video: Optional[str] = None  # absolute path
    frames: Optional[List[str]] = None  # absolute image paths
    clip: Optional[Tuple[float, float]] = None
    signature: str = ""  # inputs + options: a manifest record counts only if this matches
    extra: Dict = field(default_factory=dict)
    summaries: List[str] = field(default_factory=list)  # every reference; ``summary`` is the first

    @property
    def source(self) -> str:
        return self.video if self.video else (self.frames[0] if self.frames else "")


def _resolve(p: str, bases: Sequence[Path]) -> Path:
    path = Path(os.path.expanduser(p))
    if path.is_absolute():
        return path
    for base in bases:
        cand = base / path
        if cand.exists():
            return cand.absolute()
    return (bases[0] / path).absolute()


def _stat_sig(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def shard_of(item_id: str, num_shards: int) -> int:
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % num_shards


def _clip_id(base: str, clip) -> str:
    if not clip:
        return base
    end = "end" if clip[1] == float("inf") else f"{clip[1]:g}"
    return f"{base}@{clip[0]:g}-{end}"


def summary_texts(value) -> Tuple[Optional[List[str]], Optional[str]]:
    """A row's summary as a list of references, or the reason it is refused.

    A string is one summary; a list of strings is several references of the same video (one
    training row each; evaluation keeps them all).  Anything else (a number, an object, a list holding
    one) is refused: stringifying it would train on its Python repr.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "empty summary"
    if isinstance(value, str):
        return [value.strip()], None
    if isinstance(value, list):
        if not value:
            return None, "empty summary (an empty list)"
        out = []
        for k, v in enumerate(value, 1):
            if not isinstance(v, str):
                return None, f"summary list item {k} is {type_name(v)}, not text"
            if not v.strip():
                return None, f"summary list item {k} is empty"
            out.append(v.strip())
        return out, None
    return None, f"summary must be text or a list of texts, got {type_name(value)}"


def build_plan(rows: Sequence[SourceRow], video_root: Optional[Path], options_sig: dict,
               unique_summaries: bool = False) -> Tuple[List[Item], List[Skip]]:
    """Items to convert, in input order, and the rows refused before decoding."""
    items: List[Item] = []
    skips: List[Skip] = []
    ids: Dict[str, str] = {}
    seen_rows: Dict[tuple, str] = {}
    seen_summaries: Dict[str, str] = {}
    for row in rows:
        where = f"{Path(row.file).name}:{row.row}"
        bases = [Path(video_root)] if video_root else []
        bases.append(Path(row.file).parent if Path(row.file).is_file() else Path(row.file))

        given_id, id_problem = id_text(row.id)

        def skip(reason: str, video: Optional[str] = None) -> None:
            skips.append(Skip(row.file, row.row, reason, given_id,
                              video or (row.video if isinstance(row.video, str) else None)))

        if row.problem:
            skip(row.problem)
            continue
        if id_problem:
            skip(id_problem)
            continue
        if row.video is not None and not isinstance(row.video, str):
            skip(f"video path must be text, got {type_name(row.video)}")
            continue
        if not row.video and not (isinstance(row.frames, list) and row.frames
                                  and all(isinstance(f, str) and f for f in row.frames)):
            skip("no video path" if not row.frames else
                 f"frames must be a non-empty list of image paths, got {type_name(row.frames)}")
            continue
        summaries, summary_problem = summary_texts(row.summary)
        if summary_problem:
            skip(summary_problem)
            continue
        summary = summaries[0]
        if row.clip and row.clip[1] <= row.clip[0]:
            skip(f"clip end {row.clip[1]:g}s is not after its start {row.clip[0]:g}s")
            continue
        video = frames = None
        try:
            if row.video:
                vpath = _resolve(row.video, bases)
                if not vpath.exists():
                    skip("video file not found", str(vpath))
                    continue
                if not vpath.is_file():
                    skip("not a regular file", str(vpath))
                    continue
                video = str(vpath)
                sig_inputs = _stat_sig(vpath)
                default_id = (str(vpath.relative_to(video_root).with_suffix(""))
                              if video_root and vpath.is_relative_to(Path(video_root).absolute()) else vpath.stem)
            else:
                fpaths = [_resolve(f, bases) for f in row.frames or []]
                missing = [str(p) for p in fpaths if not p.is_file()]
                if missing:
                    skip(f"frame image not found: {missing[0]}", missing[0])
                    continue
                frames = [str(p) for p in fpaths]
                sig_inputs = [_stat_sig(p) for p in fpaths]
                default_id = fpaths[0].parent.name or fpaths[0].stem
        except OSError as exc:
            skip(f"cannot stat input: {exc.strerror or exc}")
            continue
        item_id = given_id or _clip_id(default_id, row.clip)
        # a video with several summaries also takes the training-row ids ID#2, ID#3... (outputs.split_rows)
        row_ids = [item_id] + [f"{item_id}#{k}" for k in range(2, len(summaries) + 1)]
        taken = next((i for i in row_ids if i in ids), None)
        if taken is not None:
            skip(f"duplicate id {taken!r} (first used at {ids[taken]})")
            continue
        dup_key = (video or tuple(frames), row.clip, tuple(summaries))
        if dup_key in seen_rows:
            skip(f"duplicate row: same video, clip and summary as {seen_rows[dup_key]}")
            continue
        repeated = next((t for t in summaries if t in seen_summaries), None) if unique_summaries else None
        if repeated is not None:
            skip(f"duplicate summary (same text as {seen_summaries[repeated]})")
            continue
        for k, rid in enumerate(row_ids):
            ids[rid] = where if k == 0 else f"{where}, its reference {k + 1}"
        seen_rows[dup_key] = where
        for text in summaries:
            seen_summaries.setdefault(text, where)
        payload = {"inputs": sig_inputs, "clip": row.clip and [row.clip[0], str(row.clip[1])],
                   "fps": row.frames_fps, "options": options_sig}
        sig = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
        items.append(Item(item_id, len(items), row, summary, video, frames, row.clip, sig, dict(row.extra),
                          summaries))
    return items, skips
