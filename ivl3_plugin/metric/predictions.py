"""Predictions files: read the shapes people have, write one shape of our own.

Our format (JSONL, one object per line)::

    {"id": "...", "reference": "..." | ["...", ...], "prediction": "...", "frames": ["/abs/000.jpg", ...]}

A sampled run (``ivl3 predict --num-samples N``) adds ``"candidates": ["...", ...]`` (the N sampled
summaries, in sample order) and keeps ``prediction`` = the first candidate, so every reader of the
one-prediction format (``ivl3 eval``, the report) still works and scores the first sample.

Also read: ms-swift ``infer --result_path`` / training ``predict.jsonl`` rows
(``response``, ``labels``, ``messages``, ``videos``/``images``) and the user
guide's ``evaluation_results.json`` (a JSON list of ``{id, ground_truth,
prediction, image}``).  Bad rows fail with the file, the row and the field.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Union

from ..shared.atomic import write_text_atomic
from ..shared.errors import InputError, id_text, type_name
from ..shared.jsonl import JsonlError, decode_utf8, iter_jsonl

PathLike = Union[str, os.PathLike]


class PredictionsError(InputError):
    """A predictions file that cannot be read; the message names file, row and field."""


@dataclass
class Prediction:
    id: str
    references: List[str]
    prediction: str
    frames: List[str] = field(default_factory=list)
    candidates: Optional[List[str]] = None  # the sampled summaries (``--num-samples``); None: one greedy one

    def to_json(self) -> dict:
        ref = self.references[0] if len(self.references) == 1 else self.references
        row = {"id": self.id, "reference": ref, "prediction": self.prediction, "frames": self.frames}
        if self.candidates is not None:
            row["candidates"] = list(self.candidates)
        return row


def _strings(value, where: str) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PredictionsError(f"{where}: expected a string or a list of strings, got {type_name(value)}")


def frames_of(row: dict) -> List[str]:
    for key in ("frames", "videos", "images", "image", "video"):
        value = row.get(key)
        if not value:
            continue
        if isinstance(value, str):
            return [value]
        out: List[str] = []
        for v in value:  # swift: videos = [[frame, frame, ...]] or [video_path]; images = [path | {"path"}]
            if isinstance(v, list):
                out.extend(x for x in v if isinstance(x, str))
            elif isinstance(v, dict) and isinstance(v.get("path"), str):
                out.append(v["path"])
            elif isinstance(v, str):
                out.append(v)
        return out
    return []


def reference_from_messages(messages) -> Optional[str]:
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str):
                return m["content"]
    return None


def parse_row(row: dict, where: str, index: int) -> Prediction:
    if not isinstance(row, dict):
        raise PredictionsError(f"{where}: expected a JSON object, got {type_name(row)}")
    if "prediction" in row:
        pred = row["prediction"]
    elif "response" in row:
        pred = row["response"]
    else:
        raise PredictionsError(f"{where}: no prediction (looked for fields 'prediction', 'response')")
    if pred is None:
        pred = ""
    if not isinstance(pred, str):
        raise PredictionsError(f"{where}, field 'prediction': expected a string, got {type_name(pred)}")
    for key in ("reference", "references", "ground_truth", "labels", "summary"):
        if row.get(key) is not None:
            refs = _strings(row[key], f"{where}, field {key!r}")
            break
    else:
        ref = reference_from_messages(row.get("messages"))
        if ref is None:
            raise PredictionsError(f"{where}: no reference (looked for 'reference', 'references', "
                                   "'ground_truth', 'labels', 'summary', an assistant message)")
        refs = [ref]
    if not refs:
        raise PredictionsError(f"{where}: the reference list is empty")
    item_id, problem = id_text(row.get("id"))
    if problem:
        raise PredictionsError(f"{where}, field 'id': {problem}")
    candidates = row.get("candidates")
    if candidates is not None and not (isinstance(candidates, list) and all(isinstance(c, str) for c in candidates)):
        raise PredictionsError(f"{where}, field 'candidates': expected a list of strings, got {type_name(candidates)}")
    return Prediction(item_id if item_id is not None else str(index), refs, pred, frames_of(row), candidates)


def load_predictions(path: PathLike) -> List[Prediction]:
    """Read any supported predictions file (JSONL or a JSON list)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such predictions file" if not path.exists() else
                               f"{path}: not a file (a predictions file is JSONL or a JSON list)")
    with open(path, "rb") as f:
        is_list = f.read(4096).lstrip().startswith(b"[")
    rows = []
    if is_list:
        try:
            data = json.loads(decode_utf8(path, path.read_bytes()))
        except JsonlError as exc:
            raise PredictionsError(str(exc)) from None
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        rows = [(f"{path}, item {i}", r) for i, r in enumerate(data)]
    else:
        try:
            for item in iter_jsonl(path):
                if item.error:
                    hint = ("; a predictions file is JSONL (one object per line) or a JSON list"
                            if not rows and item.value is None and item.line == 1 else "")
                    raise PredictionsError(f"{path}:{item.line}: not valid JSON ({item.error}){hint}")
                rows.append((f"{path}:{item.line}", item.value))
        except JsonlError as exc:
            raise PredictionsError(str(exc)) from None
    if not rows:
        raise PredictionsError(f"{path}: no rows (no predictions in the file)")
    preds = [parse_row(r, where, i) for i, (where, r) in enumerate(rows)]
    seen = {}
    for p, (where, _) in zip(preds, rows):
        if p.id in seen:
            raise PredictionsError(f"{where}: id {p.id!r} repeats {seen[p.id]}")
        seen[p.id] = where
    return preds


def write_predictions(preds: Iterable[Prediction], path: PathLike) -> Path:
    """Our JSONL, written atomically (temporary file, then rename)."""
    return write_text_atomic(path, "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in preds))


def as_dicts(preds: Iterable[Prediction]) -> List[dict]:
    return [asdict(p) for p in preds]
