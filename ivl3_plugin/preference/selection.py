"""Which summary is chosen and which rejected for one video, and when a video gives no pair.

``chosen="reference"`` (the default) trains towards the human summary and away from the worst
sample: the chosen side is always correct, whatever the model's quality.  ``chosen="best"`` uses
the best-scoring sample instead (on-policy pairs, as MPO papers sample them), which only makes sense
once the model's samples are decent.  Rejected is the lowest-scoring candidate.

A video is skipped when its candidates' best and worst scores differ by less than ``margin`` (the
metric cannot tell them apart, so the pair would teach noise), or when the two sides are the same
text (a rejected sample equal to the reference, or best == worst): DPO's loss on identical texts is
zero and MPO's would push a correct summary away.  Ties between equal scores are broken by a
random generator seeded with ``(seed, id)``, so a row's pair does not depend on the other rows or
their order, and the same seed gives the same pairs.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from .inputs import Skip
from .scoring import ScoredItem

CHOSEN_MODES = ("reference", "best")
BELOW_MARGIN = "below_margin"
REJECTED_IS_REFERENCE = "rejected_is_reference"
CHOSEN_EQUALS_REJECTED = "chosen_equals_rejected"


@dataclass
class Pair:
    scored: ScoredItem
    chosen: str
    rejected: str
    chosen_index: Optional[int]  # None: the reference
    rejected_index: int

    def to_json(self) -> dict:
        s = self.scored
        return {"where": s.item.where, "id": s.item.id, "chosen": "reference" if self.chosen_index is None
                else f"candidate {s.item.position(self.chosen_index)}",
                "rejected": f"candidate {s.item.position(self.rejected_index)}",
                "best": max(s.scores), "worst": min(s.scores),
                "rejected_scores": s.details[self.rejected_index]}


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


def pick(indices: List[int], rng: random.Random) -> int:
    return indices[0] if len(indices) == 1 else rng.choice(indices)


def select_pair(scored: ScoredItem, chosen: str = "reference", margin: float = 0.0,
                seed: int = 0) -> Union[Pair, Skip]:
    """The pair of one scored row, or why it gives none."""
    if chosen not in CHOSEN_MODES:
        raise ValueError(f"chosen must be one of {CHOSEN_MODES}, got {chosen!r}")
    item, scores = scored.item, scored.scores
    best, worst = max(scores), min(scores)
    if best - worst < margin:
        return Skip(item.where, item.id, BELOW_MARGIN, f"best {best:.2f} and worst {worst:.2f} differ by "
                                                       f"{best - worst:.2f} < margin {margin:g}")
    rng = random.Random(f"{seed}\0{item.id}")
    rejected_index = pick([k for k, s in enumerate(scores) if s == worst], rng)
    rejected = item.candidates[rejected_index]
    if chosen == "reference":
        if _same(rejected, item.reference):
            return Skip(item.where, item.id, REJECTED_IS_REFERENCE,
                        f"the lowest-scoring candidate ({rejected_index}) is the reference itself")
        return Pair(scored, item.reference, rejected, None, rejected_index)
    chosen_index = pick([k for k, s in enumerate(scores) if s == best], rng)
    if _same(item.candidates[chosen_index], rejected):
        return Skip(item.where, item.id, CHOSEN_EQUALS_REJECTED,
                    f"the best ({chosen_index}) and the worst ({rejected_index}) candidate are the same text")
    return Pair(scored, item.candidates[chosen_index], rejected, chosen_index, rejected_index)


def select_pairs(scored: List[ScoredItem], chosen: str = "reference", margin: float = 0.0,
                 seed: int = 0) -> Tuple[List[Pair], List[Skip]]:
    pairs, skipped = [], []
    for s in scored:
        result = select_pair(s, chosen, margin, seed)
        (pairs if isinstance(result, Pair) else skipped).append(result)
    return pairs, skipped
