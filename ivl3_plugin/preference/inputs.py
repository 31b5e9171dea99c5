"""What ``ivl3 pairs`` reads: converted dataset rows and the candidate summaries sampled for them.

A row that cannot give a pair (frame files gone, no reference summary, no candidates) is not an
error for the whole run: it becomes a :class:`Skip` naming ``file:row``, the id and the reason, so the
report lists it and nothing is silently dropped or kept.  What makes the whole run meaningless is an
error: a dataset that is not a file, or a candidates file whose ids are not the dataset's (candidates
for another dataset would pair summaries with the wrong videos).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..metric.predictions import PredictionsError, load_predictions
from ..shared.errors import InputError, id_text
from ..shared.jsonl import JsonlError, iter_jsonl
from ..shared.prompts import image_markup_in

PathLike = Union[str, os.PathLike]

# reasons a row is not used; the first three are bad input, the others are the selection's choices
MISSING_FRAMES = "missing_frames"
NO_REFERENCE = "no_reference"
NO_CANDIDATES = "no_candidates"
BAD_INPUT = (MISSING_FRAMES, NO_REFERENCE, NO_CANDIDATES)
ONLY_MARKUP = "candidates_all_markup"  # every candidate had image markup: dropped, so nothing to pair


class PairsError(InputError):
    """The inputs of ``ivl3 pairs`` cannot be used at all (the message names the file and what is wrong)."""


@dataclass
class Skip:
    where: str  # "file:row"
    id: str
    reason: str  # one of the constants above or of selection.py
    detail: str

    def to_json(self) -> dict:
        return {"where": self.where, "id": self.id, "reason": self.reason, "detail": self.detail}


@dataclass
class Item:
    """One usable dataset row: its prompt, reference(s), frames and (once matched) candidates."""

    where: str
    id: str
    row: dict
    reference: str  # the row's assistant message: the target it trains towards
    references: List[str]  # what candidates are scored against (all of ``references`` when present)
    candidates: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)  # candidates left out, with the reason (report lines)
    positions: List[int] = field(default_factory=list)  # each kept candidate's number in the candidates file

    def position(self, index: int) -> int:
        return self.positions[index] if self.positions else index


def frame_paths(row: dict) -> List[str]:
    """Every frame path of a converted row (``videos`` is a list of videos, each a list of frames)."""
    out: List[str] = []
    for video in row.get("videos") or []:
        out.extend([video] if isinstance(video, str) else [f for f in video if isinstance(f, str)])
    return out


def last_assistant(messages) -> Optional[str]:
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict) \
            and messages[-1].get("role") == "assistant" and isinstance(messages[-1].get("content"), str) \
            and messages[-1]["content"].strip():
        return messages[-1]["content"]
    return None


def row_problem(row: dict, base: Path) -> Optional[Tuple[str, str]]:
    """``(reason, detail)`` when a dataset row cannot give a pair, else None."""
    reference = last_assistant(row.get("messages"))
    if reference is None:
        return NO_REFERENCE, "no reference: the last message is not a non-empty assistant message"
    frames = frame_paths(row)
    if not frames:
        return MISSING_FRAMES, "no frames: the row has no 'videos' frame paths"
    missing = [f for f in frames if not (base / f).is_file()]
    if missing:
        return MISSING_FRAMES, f"{len(missing)} of {len(frames)} frame files missing (first: {missing[0]})"
    return None


def read_dataset(path: PathLike) -> Tuple[List[Item], List[Skip], List[str]]:
    """``(items, skipped, ids in file order)`` of a converted ms-swift JSONL (e.g. ``<out>/swift/train.jsonl``)."""
    path = Path(path)
    if not path.is_file():
        raise PairsError(f"--dataset {path}: no such file" if not path.exists() else
                         f"--dataset {path}: not a file (give a converted JSONL, e.g. <out>/swift/train.jsonl)")
    items: List[Item] = []
    skipped: List[Skip] = []
    ids: List[str] = []
    seen: Dict[str, str] = {}
    try:
        lines = list(iter_jsonl(path))
    except JsonlError as exc:
        raise PairsError(str(exc)) from None
    for n, line in enumerate(lines):
        where = f"{path}:{line.line}"
        if line.error or not isinstance(line.value, dict):
            raise PairsError(f"{where}: not a JSON object ({line.error or 'a ' + type(line.value).__name__})")
        row = line.value
        item_id, problem = id_text(row.get("id"))
        if problem:
            raise PairsError(f"{where}, field 'id': {problem}")
        item_id = item_id if item_id is not None else str(n)  # as ivl3 predict names a row without id
        if item_id in seen:
            raise PairsError(f"{where}: id {item_id!r} repeats {seen[item_id]}")
        seen[item_id] = where
        ids.append(item_id)
        bad = row_problem(row, path.parent)
        if bad:
            skipped.append(Skip(where, item_id, *bad))
            continue
        refs = row.get("references")
        reference = last_assistant(row["messages"])
        references = list(refs) if isinstance(refs, list) and refs and all(isinstance(r, str) for r in refs) \
            else [reference]
        items.append(Item(where, item_id, row, reference, references))
    if not lines:
        raise PairsError(f"--dataset {path}: no rows")
    return items, skipped, ids


def read_candidates(path: PathLike) -> Dict[str, List[str]]:
    """id → candidate summaries from a predictions file (``candidates``; a one-prediction file gives one each)."""
    try:
        preds = load_predictions(path)
    except PredictionsError as exc:
        raise PairsError(f"--candidates: {exc}") from None
    return {p.id: list(p.candidates) if p.candidates is not None else [p.prediction] for p in preds}


def attach_candidates(items: List[Item], skipped: List[Skip], dataset_ids: List[str],
                      candidates: Dict[str, List[str]], source: str) -> List[Item]:
    """Give each item its candidates; the ids must be the dataset's, else :class:`PairsError`."""
    missing = [i for i in dataset_ids if i not in candidates]
    extra = [i for i in candidates if i not in set(dataset_ids)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} dataset id(s) have no candidates (e.g. {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} candidate id(s) are not in the dataset (e.g. {extra[0]!r})")
        raise PairsError(f"--candidates {source} does not match the dataset: {'; '.join(parts)} — were the "
                         f"candidates sampled from another dataset file?")
    kept = []
    for item in items:
        given = list(candidates[item.id])
        item.candidates = []
        for n, text in enumerate(given):
            markup = image_markup_in(text)
            if markup:  # trained as an answer, it would read as image slots and break the pair's frames
                item.dropped.append(f"candidate {n}: contains image markup {', '.join(markup)}")
            else:
                item.candidates.append(text)
                item.positions.append(n)
        if not given:
            skipped.append(Skip(item.where, item.id, NO_CANDIDATES, "the candidate list is empty"))
        elif not item.candidates:
            skipped.append(Skip(item.where, item.id, ONLY_MARKUP, f"all {len(given)} candidates contain image "
                                f"markup ({'; '.join(item.dropped[:2])}); as answer text it would be read as "
                                f"image slots"))
        else:
            kept.append(item)
    return kept
