"""Input formats for the converter: a ``DatasetSource`` reads a file and yields ``SourceRow`` items.

Sources only *read*; they never decide whether a row is good.  A row with a
missing field is still yielded (with ``problem`` set) so the converter can put
it in the skipped report with its file and row number instead of crashing.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..shared.errors import InputError, type_name
from ..shared.jsonl import JsonlError, decode_utf8, iter_jsonl

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
    split: Optional[str] = None  # "train" / "val" when the table says; else the id's hash decides
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


class SourceError(InputError):
    """The file as a whole cannot be read (bad JSON, wrong shape): names the file."""


# ---------------------------------------------------------------- record readers

def read_records(path: Path) -> List[Record]:
    """CSV, JSON (a list, or {"data"/"annotations": list}) or JSONL as (row number, dict).

    A file that cannot be read as a whole raises :class:`SourceError` naming it and, where there is one,
    the line: not UTF-8, not JSON, not a list of rows.  A bad JSONL *line* is a row with ``__problem__``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out = []
        try:
            for item in iter_jsonl(path):  # a bad line is a skipped row with its reason, not a failed file
                rec = {"__problem__": f"invalid JSON: {item.error}"} if item.error else item.value
                out.append((item.line, rec if isinstance(rec, dict) else
                            {"__problem__": f"line is {type_name(rec)}, not a JSON object"}))
        except JsonlError as exc:
            raise SourceError(str(exc)) from None
        return out
    try:
        text = decode_utf8(path, path.read_bytes())
    except JsonlError as exc:
        raise SourceError(str(exc)) from None
    if suffix in (".csv", ".tsv"):
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
            return [(i + 2, dict(r)) for i, r in enumerate(reader)]  # row 1 is the header
        except csv.Error as exc:
            raise SourceError(f"{path}:{reader.line_num}: not valid {suffix[1:].upper()} ({exc})") from None
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if isinstance(data, dict):
        for key in LIST_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            keys = ", ".join(map(repr, list(data)[:8])) or "none"
            raise SourceError(f"{path}: expected a JSON list of rows, or an object with a list under "
                              f"{' / '.join(map(repr, LIST_KEYS))}; got an object with keys {keys}")
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of rows, got {type_name(data)}")
    return [(i + 1, r if isinstance(r, dict) else {"__problem__": f"item is {type_name(r)}, not a JSON object"})
            for i, r in enumerate(data)]


LIST_KEYS = ("data", "annotations", "samples", "items")


def _first_keys(path: Path) -> set:
    try:
        recs = read_records(path)
    except Exception:
        return set()
    keys: set = set()
    for _, r in recs[:5]:
        keys.update(r)
    return keys


def _all_keys(records: List[Record]) -> List[str]:
    keys: Dict[str, None] = {}
    for _, r in records:
        keys.update((k, None) for k in r if isinstance(k, str) and k != "__problem__")
    return list(keys)


def _text(value: Any) -> Any:
    """A text field as read: strings stripped; any other value kept as it is, for planning to judge
    (a list of summaries is several references; a number or an object is refused with a reason)."""
    return value.strip() if isinstance(value, str) else value


def _float(value: Any) -> Optional[float]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(type_name(value))
    out = float(value)
    if math.isnan(out):
        raise ValueError("NaN")
    return out


TABLE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


# ---------------------------------------------------------------- built-in sources

class AnnotationTable(DatasetSource):
    """CSV/TSV/JSON/JSONL rows naming a video file and its summary (keys configurable)."""

    description = "csv/json/jsonl rows: video, summary, optional id, start, end, split"
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
        records = read_records(path)
        have = _all_keys(records)
        for option, key in (("--video-key", video_key), ("--summary-key", summary_key), ("--id-key", id_key),
                            ("--start-key", start_key), ("--end-key", end_key)):
            if key and have and key not in have:  # a typo in a column name would skip every row
                raise SourceError(f"{path}: column {key!r} ({option}) not found (have: {', '.join(have)})")
        for n, rec in records:
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
            clip = []
            for name in (start_key or "start", end_key or "end"):
                try:
                    clip.append(_float(rec.get(name)))
                except (TypeError, ValueError):
                    row.problem = f"clip {name!r} is not a number of seconds ({rec.get(name)!r})"
                    break
            if row.problem:
                yield row
                continue
            start, end = clip
            if start is not None and start < 0:
                row.problem = f"clip start {start:g}s is negative"
            elif start is not None or end is not None:
                row.clip = (start or 0.0, end if end is not None else float("inf"))
            if not row.problem:
                row.split, row.problem = _split(rec.get("split"))
            if not row.problem and row.video in (None, ""):
                row.problem = f"no video path (looked for {vk or ' / '.join(self.video_keys)!r})"
            yield row


SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "val", "dev": "val"}


def _split(value) -> Tuple[Optional[str], Optional[str]]:
    """A ``split`` cell -> ("train" | "val" | None, problem): a dataset's own split beats the hash."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    name = SPLIT_NAMES.get(str(value).strip().lower())
    if name is None:
        return None, f"'split' must be train or val (or validation/test/dev), got {value!r}"
    return name, None


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
                if not isinstance(frames, list) or not frames or not all(isinstance(f, str) and f for f in frames):
                    row.problem = f"'frames' must be a non-empty list of image paths, got {type_name(frames)}"
                else:
                    row.frames = list(frames)
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
                if isinstance(image, list) and image and all(isinstance(x, str) and x for x in image):
                    row.frames = list(image)
                elif isinstance(image, str) and Path(image).suffix.lower() in VIDEO_SUFFIXES:
                    row.video = image
                elif isinstance(image, str) and image:
                    row.frames = [image]
                elif not image:
                    row.problem = "no 'image'"
                else:
                    row.problem = f"'image' must be a path or a list of paths, got {type_name(image)}"
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
                try:
                    row.summary = decode_utf8(txt, txt.read_bytes()).strip()
                except JsonlError as exc:
                    row.problem = f"summary file {exc}"
                except OSError as exc:
                    row.problem = f"summary file {txt.name}: {exc.strerror or exc}"
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
    """The source named ``name``, or the first whose ``sniff`` accepts ``path`` (plugins before built-ins).

    When none does, :class:`SourceError` says why in the user's terms (:func:`unrecognised`).
    """
    if registry is None:
        from ..plugins import get_plugins

        registry = get_plugins().dataset_sources
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if not (path.is_file() or path.is_dir()):
        raise SourceError(f"{path}: not a regular file or a folder")
    if name:
        try:
            return name, registry.get(name)
        except KeyError as exc:
            raise SourceError(f"--source {name}: {exc.args[0]}") from None
    # third-party sources first: a plugin that recognises a file is more specific than the built-ins
    for entry in sorted(registry, key=lambda e: e.plugin == BUILTIN_PLUGIN):
        try:
            if entry.obj.sniff(path):
                return entry.name, entry.obj
        except Exception:
            continue
    raise SourceError(unrecognised(path, registry.names()))


def unrecognised(path: Path, known: List[str]) -> str:
    """Why no source read ``path``: unreadable, empty, not a list of rows, or the columns it lacks."""
    hint = f"name the columns with --video-key / --summary-key, or pass --source NAME (known: {', '.join(known)})"
    if path.suffix.lower() not in TABLE_SUFFIXES:
        return (f"{path}: not an annotation file ivl3 reads (.csv, .tsv, .json, .jsonl, or a folder of videos); "
                f"{hint}")
    records = read_records(path)  # raises the file's own problem: not UTF-8, not JSON, not a list
    if not records:
        text = path.read_bytes().strip()
        why = ("the file is empty" if not text else "only a header line" if path.suffix.lower() in (".csv", ".tsv")
               else "an empty list")
        return f"{path}: no rows ({why})"
    have = _all_keys(records)
    if not have:
        return f"{path}: no row is a JSON object with fields"
    missing = []
    table = AnnotationTable
    if not any(k in have for k in table.video_keys):
        missing.append(f"no video column (looked for {', '.join(table.video_keys)})")
    if not any(k in have for k in table.summary_keys):
        missing.append(f"no summary column (looked for {', '.join(table.summary_keys)})")
    what = "; ".join(missing) or "no source accepts these columns"
    return f"{path}: {what}; have: {', '.join(have)}; {hint}"
