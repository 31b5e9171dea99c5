"""What a demo summary says: colour, shape and direction, read back from any sentence.

ROUGE and CIDEr reward the sentence pattern; these three counts show whether the model read the
video. A prediction gets an attribute right when it names the reference's value and no other.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 230), "yellow": (235, 200, 20)}
SHAPES = ("circle", "square", "triangle")
MOTIONS = {  # id word -> the phrase the summaries use: one word per attribute, so each is one decision
    "rightward": "moves right",
    "leftward": "moves left",
    "falling": "moves down",
    "rising": "moves up",
}
ATTRIBUTES = ("colour", "shape", "direction")


def summary_of(colour: str, shape: str, motion: str) -> str:
    return f"A {colour} {shape} {MOTIONS[motion]}."


def _one(found: List[str]) -> Optional[str]:
    return found[0] if len(set(found)) == 1 else None


def parse(text: str) -> Dict[str, Optional[str]]:
    """``{"colour", "shape", "direction"}`` named in ``text`` (None: none or several)."""
    low = " ".join(re.findall(r"[a-z]+", (text or "").lower()))
    return {
        "colour": _one([c for c in COLOURS if re.search(rf"\b{c}\b", low)]),
        "shape": _one([s for s in SHAPES if re.search(rf"\b{s}s?\b", low)]),
        "direction": _one([m for m, phrase in MOTIONS.items() if phrase in low]),
    }


def judge(prediction: str, reference: str) -> Dict[str, bool]:
    """Per attribute: does the prediction name the reference's value (and only it)?"""
    want, got = parse(reference), parse(prediction)
    return {a: want[a] is not None and got[a] == want[a] for a in ATTRIBUTES}


def count_right(pairs: Iterable) -> Dict[str, int]:
    """``(prediction, reference)`` pairs -> how many got each attribute, all three, and how many there were."""
    out = dict.fromkeys(ATTRIBUTES + ("all", "videos"), 0)
    for prediction, reference in pairs:
        j = judge(prediction, reference)
        for a in ATTRIBUTES:
            out[a] += j[a]
        out["all"] += all(j.values())
        out["videos"] += 1
    return out
