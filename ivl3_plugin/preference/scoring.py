"""How good each candidate is: a weighted mix of per-item scores from a registered metric.

The default, ``0.5·CIDEr-D + 0.5·ROUGE-L`` of the built-in ``ivl3_summary`` (both in percent),
rewards the reference's content words (CIDEr-D's tf-idf) and its order (ROUGE-L's longest common
subsequence).  CIDEr-D is not bounded by 100 and usually spreads wider, so it weighs more in the
spread between the best and the worst candidate; give ``--score rougeL=1`` for a bounded score.
Any registered metric may score (``--metric NAME``), with weights over the per-item keys it returns.

CIDEr-D's idf comes from the references of the scored set, so scoring each video alone would give
every candidate 0.  Candidates are therefore scored in passes, pass ``k`` holding the ``k``-th
candidate of *every* usable row (a row with fewer candidates repeats its first one there, and that
score is not used): each pass scores the same set of references, so the idf — and a candidate's
score — does not depend on how many candidates the other rows have.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ..metric import METRIC_NAME
from ..metric.evaluation import metric_class, score_with
from ..metric.scoring import ScoreOptions
from .inputs import Item, PairsError

DEFAULT_WEIGHTS = {"cider": 0.5, "rougeL": 0.5}


def parse_weights(text: Optional[str]) -> Optional[Dict[str, float]]:
    """``"cider=0.5,rougeL=0.5"`` → ``{"cider": 0.5, "rougeL": 0.5}``; None stays None (the default)."""
    if text is None:
        return None
    weights: Dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise PairsError(f"--score {text!r}: {value!r} is not a number (give KEY=WEIGHT,...)") from None
        if not key.strip() or not math.isfinite(weight):
            raise PairsError(f"--score {text!r}: give KEY=WEIGHT,... (e.g. cider=0.5,rougeL=0.5)")
        weights[key.strip()] = weight
    if not any(weights.values()):
        raise PairsError(f"--score {text!r}: every weight is 0")
    return weights


def check_metric(name: str) -> None:
    """Fail now (before sampling or reading anything) on a metric name the registry does not know."""
    metric_class(name)


@dataclass
class ScoredItem:
    item: Item
    scores: List[float]  # the weighted score of each candidate, in candidate order
    details: List[Dict[str, float]]  # the metric's per-item keys used, per candidate


def resolve_weights(metric: str, weights: Optional[Dict[str, float]], keys: Sequence[str]) -> Dict[str, float]:
    """The weights to use with a metric whose per-item results have ``keys``; unknown keys are an error."""
    if weights is None:
        if metric == METRIC_NAME:
            weights = dict(DEFAULT_WEIGHTS)
        elif len(keys) == 1:
            weights = {keys[0]: 1.0}
        else:
            raise PairsError(f"metric {metric} gives several scores per item ({', '.join(keys)}): say how to mix "
                             f"them with --score KEY=WEIGHT,...")
    unknown = [k for k in weights if k not in keys]
    if unknown:
        raise PairsError(f"--score names {', '.join(unknown)}, which metric {metric} does not give per item "
                         f"(it gives: {', '.join(keys) or 'nothing'})")
    return weights


def score_items(items: List[Item], metric: str = METRIC_NAME, weights: Optional[Dict[str, float]] = None,
                options: Optional[ScoreOptions] = None,
                progress: Optional[Callable[[str], None]] = None) -> tuple:
    """``([ScoredItem], weights used)``: every candidate of every item scored against the item's references."""
    if not items:
        return [], weights or (dict(DEFAULT_WEIGHTS) if metric == METRIC_NAME else {})
    if options is None and metric == METRIC_NAME:  # METEOR (a JVM per pass) only when a weight asks for it
        options = ScoreOptions(meteor="auto" if weights and "meteor" in weights else False)
    options = options or ScoreOptions()  # another metric runs with its own defaults
    passes = max(len(i.candidates) for i in items)
    references = [i.references for i in items]
    per_pass: List[List[Dict[str, float]]] = []
    for k in range(passes):
        if progress:
            progress(f"pairs: scoring candidate {k + 1}/{passes} of {len(items)} rows with {metric}")
        texts = [i.candidates[k] if k < len(i.candidates) else i.candidates[0] for i in items]
        per_pass.append(score_with(metric, texts, references, options).per_item)
    keys = sorted(set().union(*(d.keys() for d in per_pass[0])))
    weights = resolve_weights(metric, weights, keys)
    out = []
    for n, item in enumerate(items):
        details = [{key: float(per_pass[k][n].get(key, 0.0)) for key in weights} for k in range(len(item.candidates))]
        out.append(ScoredItem(item, [sum(w * d[key] for key, w in weights.items()) for d in details], details))
    return out, weights
