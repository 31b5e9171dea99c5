"""Input formats for the converter: a ``DatasetSource`` reads a file and yields ``SourceRow`` items.

Sources only *read*; they never decide whether a row is good.  A row with a
missing field is still yielded (with ``problem`` set) so the converter can put
it in the skipped report with its file and row number instead of crashing.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

Record = Tuple[int, Dict[str, Any]]  # (1-based row/line number, record)


@dataclass
class SourceRow:
    """One annotated sample as read from an input file.

    Exactly one of ``video`` (a video file) or ``frames`` (already-extracted
    images, e.g. the user guide's ``video_data``) is expected.
    """

    file: str
    row: int
    summary: Optional[str] = None
    video: Optional[str] = None
    frames: Optional[List[str]] = None
    id: Optional[str] = None
    clip: Optional[Tuple[float, float]] = None
    frames_fps: Optional[float] = None  # rate of a frame list, when known
    problem: Optional[str] = None  # set by a source that could not read the row
    extra: Dict[str, Any] = field(default_factory=dict)


class DatasetSource:
    """Base class for an input format registered through ``register_dataset_sources``.

    ``sniff(path)`` returns True when this source can read ``path``;
    ``read(path, **opts)`` yields :class:`SourceRow`.  ``opts`` carries the
    user's column names (``video_key``, ``summary_key``, ``id_key``,
    ``start_key``, ``end_key``) for sources that accept them.
    """

    description = ""

    def sniff(self, path: Path) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, path: Path, **opts) -> Iterator[SourceRow]:  # pragma: no cover - interface
        raise NotImplementedError


class SourceError(ValueError):
    """The file as a whole cannot be read (bad JSON, wrong shape): names the file."""


# ---------------------------------------------------------------- record readers

def read_records(path: Path) -> List[Record]:
    """CSV, JSON (a list, or {"data"/"annotations": list}) or JSONL as (row number, dict)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            return [(i + 2, dict(r)) for i, r in enumerate(reader)]  # row 1 is the header
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                out.append((n, {"__problem__": f"invalid JSON: {exc.msg}"}))
                continue
            out.append((n, rec if isinstance(rec, dict) else {"__problem__": "line is not a JSON object"}))
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if isinstance(data, dict):
        for key in ("data", "annotations", "samples", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of objects")
    return [(i + 1, r if isinstance(r, dict) else {"__problem__": "item is not a JSON object"})
            for i, r in enumerate(data)]


def _first_keys(path: Path) -> set:
    try:
        recs = read_records(path)
    except Exception:
        return set()
    keys: set = set()
    for _, r in recs[:5]:
        keys.update(r)
    return keys


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    return str(value).strip()


def _float(value: Any) -> Optional[float]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return float(value)


TABLE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


# ---------------------------------------------------------------- built-in sources

class AnnotationTable(DatasetSource):
    """CSV/TSV/JSON/JSONL rows naming a video file and its summary (keys configurable)."""

    description = "csv/json/jsonl rows: video, summary, optional id, start, end"
    video_keys = ("video", "video_path", "path", "file", "filename")
    summary_keys = ("summary", "caption", "text", "description")

    def sniff(self, path: Path) -> bool:
        path = Path(path)
        if path.suffix.lower() not in TABLE_SUFFIXES:
            return False
        keys = _first_keys(path)
        return any(k in keys for k in self.video_keys) and any(k in keys for k in self.summary_keys)

    def _pick(self, rec: Dict[str, Any], given: Optional[str], choices) -> Optional[str]:
        if given:
            return given
        return next((k for k in choices if k in rec), None)

    def read(self, path: Path, video_key=None, summary_key=None, id_key=None, start_key=None, end_key=None,
             **_) -> Iterator[SourceRow]:
        for n, rec in read_records(path):
            row = SourceRow(file=str(path), row=n, problem=rec.get("__problem__"))
            if row.problem:
                yield row
                continue
            vk = self._pick(rec, video_key, self.video_keys)
            sk = self._pick(rec, summary_key, self.summary_keys)
            row.video = _text(rec.get(vk)) if vk else None
            row.summary = _text(rec.get(sk)) if sk else None
            ik = id_key or ("id" if "id" in rec else "video_id" if "video_id" in rec else None)
            row.id = _text(rec.get(ik)) if ik else None
            try:
                start = _float(rec.get(start_key or "start"))
                end = _float(rec.get(end_key or "end"))
            except (TypeError, ValueError):
                row.problem = "clip start/end is not a number"
                yield row
                continue
            if start is not None or end is not None:
                row.clip = (start or 0.0, end if end is not None else float("inf"))
            if not row.video:
                row.problem = f"no video path (looked for {vk or ' / '.join(self.video_keys)!r})"
            yield row


class GuideVideoData(DatasetSource):
    """The user guide's ``video_data``: ``{"video_id", "frames": [image paths], "summary"}``."""

    description = "user-guide video_data: video_id, frames (image list), summary"

    def sniff(self, path: Path) -> bool:
        keys = _first_keys(path) if Path(path).suffix.lower() in (".json", ".jsonl") else set()
        return {"video_id", "frames", "summary"} <= keys

    def read(self, path: Path, frames_fps=None, **_) -> Iterator[SourceRow]:
        for n, rec in read_records(path):
            row = SourceRow(file=str(path), row=n, problem=rec.get("__problem__"))
            if not row.problem:
                frames = rec.get("frames")
                row.id = _text(rec.get("video_id"))
                row.summary = _text(rec.get("summary"))
                row.frames_fps = frames_fps
                if isinstance(frames, str):
                    frames = [frames]
                if not isinstance(frames, list) or not frames:
                    row.problem = "'frames' must be a non-empty list of image paths"
                else:
                    row.frames = [str(f) for f in frames]
            yield row


class GuideEvaluationResults(DatasetSource):
    """The guide's ``evaluation_results.json`` (``id, ground_truth, prediction, image``).

    ``ground_truth`` becomes the summary, so earlier evaluation output turns into
    training data; the single image is repeated to the frame count.
    """

    description = "user-guide evaluation_results.json: id, ground_truth, prediction, image"

    def sniff(self, path: Path) -> bool:
        keys = _first_keys(path) if Path(path).suffix.lower() in (".json", ".jsonl") else set()
        return {"id", "ground_truth", "image"} <= keys

    def read(self, path: Path, **_) -> Iterator[SourceRow]:
        for n, rec in read_records(path):
            row = SourceRow(file=str(path), row=n, problem=rec.get("__problem__"))
            if not row.problem:
                row.id = _text(rec.get("id"))
                row.summary = _text(rec.get("ground_truth"))
                image = rec.get("image") or rec.get("video")
                if isinstance(image, list):
                    row.frames = [str(x) for x in image]
                elif image and Path(str(image)).suffix.lower() in VIDEO_SUFFIXES:
                    row.video = str(image)
                elif image:
                    row.frames = [str(image)]
                else:
                    row.problem = "no 'image'"
                row.extra = {"prediction": rec.get("prediction")}
            yield row


VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts")


class VideoFolder(DatasetSource):
    """A folder of videos with one ``<stem>.txt`` summary beside each (no annotation file)."""

    description = "a folder of videos, each with a <stem>.txt summary beside it"

    def sniff(self, path: Path) -> bool:
        return Path(path).is_dir()

    def read(self, path: Path, **_) -> Iterator[SourceRow]:
        videos = sorted(p for p in Path(path).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        for n, video in enumerate(videos, 1):
            txt = video.with_suffix(".txt")
            row = SourceRow(file=str(path), row=n, video=str(video), id=str(video.relative_to(path).with_suffix("")))
            if txt.is_file():
                row.summary = txt.read_text(encoding="utf-8").strip()
            else:
                row.problem = f"no summary file {txt.name}"
            yield row


BUILTIN_SOURCES = {
    "guide-video-data": GuideVideoData(),
    "guide-eval-results": GuideEvaluationResults(),
    "table": AnnotationTable(),
    "folder": VideoFolder(),
}


BUILTIN_PLUGIN = "ivl3_plugin.default_plugins.sources"


def pick_source(path: Path, name: Optional[str] = None, registry=None) -> Tuple[str, DatasetSource]:
    """The source named ``name``, or the first whose ``sniff`` accepts ``path`` (plugins before built-ins)."""
    if registry is None:
        from ..plugins import get_plugins

        registry = get_plugins().dataset_sources
    if name:
        return name, registry.get(name)
    # third-party sources first: a plugin that recognises a file is more specific than the built-ins
    for entry in sorted(registry, key=lambda e: e.plugin == BUILTIN_PLUGIN):
        try:
            if entry.obj.sniff(Path(path)):
                return entry.name, entry.obj
        except Exception:
            continue
    raise SourceError(f"{path}: no dataset source recognises this file (known: {', '.join(registry.names())}); "
                      "pass --source NAME or the key options")
