"""A fixed, deterministic corpus of >= 50 prediction/reference pairs for the metric tests.

Built from the bundled demo summaries with seeded edits (dropped, swapped,
substituted words, wrong summaries), several items with 2-3 references, and
a few awkward cases (empty prediction, capitals and punctuation, repetition).
"""
from __future__ import annotations

import json
import random

from ivl3_plugin.demo_data import ANNOTATIONS


def summary_pairs():
    """(predictions, references) — references are lists of 1-3 strings."""
    rows = [json.loads(l) for l in ANNOTATIONS.read_text().splitlines() if l.strip()]
    summaries = [r["summary"] for r in rows]
    vocab = sorted({w.strip(".").lower() for s in summaries for w in s.split()})
    rng = random.Random(1234)
    preds, refs = [], []
    for i, s in enumerate(summaries):
        words = s.rstrip(".").split()
        op = i % 5
        if op == 1 and len(words) > 2:
            del words[rng.randrange(1, len(words))]
        elif op == 2:
            words[rng.randrange(len(words))] = rng.choice(vocab)
        elif op == 3 and len(words) > 3:
            j = rng.randrange(len(words) - 1)
            words[j], words[j + 1] = words[j + 1], words[j]
        elif op == 4:
            words = summaries[(i * 7 + 3) % len(summaries)].rstrip(".").split()
        preds.append(" ".join(words) + ("." if rng.random() < 0.7 else ""))
        item_refs = [s]
        if i % 3 == 0:
            alt = s.rstrip(".").split()
            alt[rng.randrange(len(alt))] = rng.choice(vocab)
            item_refs.append("In the video, " + " ".join(alt).lower() + ".")
        if i % 6 == 0:
            item_refs.append(s.replace("moves", "travels").replace("A ", "One "))
        refs.append(item_refs)
    extras = [
        ("", ["A red circle moves from left to right."]),
        ("A RED circle, moving -- quickly!", ["A red circle is moving quickly.", "The red circle moves fast."]),
        ("circle", ["A small circle."]),
        ("a a a a a a red red red circle", ["A red circle moves from left to right."]),
        ("The square doesn't move; it's still (mostly).", ["The square does not move.", "A square stays still."]),
        ("A blue square falls from the top to the bottom of the frame slowly and then stops near the end.",
         ["A blue square falls from the top to the bottom."]),
        ("Two shapes: 3.5 seconds of a green triangle rising.", ["A green triangle rises.",
                                                                 "A green triangle moves up for 3.5 seconds.",
                                                                 "Green triangle rising."]),
    ]
    for p, r in extras:
        preds.append(p)
        refs.append(r)
    return preds, refs


def test_fixture_is_deterministic_and_varied():
    a, b = summary_pairs(), summary_pairs()
    assert a == b
    preds, refs = a
    assert len(preds) == len(refs) >= 50
    assert sum(len(r) > 1 for r in refs) >= 10  # several items with several references
    assert sum(p == r[0] for p, r in zip(preds, refs)) < len(preds) // 2  # mostly imperfect predictions
