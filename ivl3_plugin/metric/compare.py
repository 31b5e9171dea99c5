"""Compare predictions with a baseline honestly: item by item, on the ids both files have.

A baseline is matched to the predictions **by id**, never by position.  No common id is an error
(the two files are not predictions for the same samples).  When the id sets differ, both are scored
again on the common ids only (corpus scores, and CIDEr's idf, depend on the set), the change is
computed there, and the counts are reported as a warning (``ivl3 eval``'s table and JSON, the
report's page).  Common ids whose references differ are named too: their scores do not compare.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

from . import METRIC_NAME
from .evaluation import MetricError, evaluate_predictions
from .predictions import Prediction
from .scoring import ScoreOptions


def _sample(ids: List[str], k: int = 3) -> str:
    shown = ", ".join(repr(i) for i in ids[:k])
    return shown + (", ..." if len(ids) > k else "")


def _options_of(result: dict) -> ScoreOptions:
    """The options ``result`` was scored with (``evaluate_predictions`` records them)."""
    fields = {f.name for f in dataclasses.fields(ScoreOptions)}
    return ScoreOptions(**{k: v for k, v in (result.get("options") or {}).items() if k in fields})


def _restrict(result: dict, ids: List[str], options: Optional[ScoreOptions], metric: str) -> dict:
    """``result``'s items for ``ids`` (in that order), scored again as a corpus of their own."""
    options = options or _options_of(result)
    by_id = {it["id"]: it for it in result["items"]}
    preds = [Prediction(i, list(by_id[i]["references"]), by_id[i]["prediction"], list(by_id[i].get("frames") or []))
             for i in ids]
    return evaluate_predictions(preds, options, metric=metric)


def check_overlap(ours_ids: List[str], base_ids: List[str], src: Optional[str] = None,
                  base_src: Optional[str] = None) -> List[str]:
    """The ids both have, in our order; :class:`MetricError` when there are none (cheap: before any scoring)."""
    base = set(base_ids)
    common = [i for i in ours_ids if i in base]
    if not common:
        raise MetricError(
            f"no common ids: {base_src or 'the baseline'} shares no id with {src or 'the predictions'} "
            f"({len(ours_ids)} ids, e.g. {_sample(ours_ids)}; the baseline has {len(base_ids)}, e.g. "
            f"{_sample(list(base_ids))}); a baseline must be predictions for the same samples (items are "
            "matched by id, never by position)")
    return common


def compare(result: dict, baseline: dict, options: Optional[ScoreOptions] = None,
            metric: Optional[str] = None) -> dict:
    """The baseline comparison of two ``evaluate_predictions`` results, matched by id.

    Returns ``{"source", "corpus" (baseline on the common ids), "predictions_corpus" (ours on them),
    "common", "only_in_predictions", "only_in_baseline", "same_ids", "different_references",
    "warnings", "items": {id: {"baseline": scores, "predictions": scores}}}``.
    Raises :class:`MetricError` when no id is common.
    """
    metric = metric or result.get("metric") or METRIC_NAME
    ours_ids = [it["id"] for it in result["items"]]
    base_by_id = {it["id"]: it for it in baseline["items"]}
    ours_by_id = {it["id"]: it for it in result["items"]}
    common = check_overlap(ours_ids, list(base_by_id), result.get("source"), baseline.get("source"))
    only_ours = len(ours_ids) - len(common)
    only_base = len(base_by_id) - len(common)
    same_ids = not only_ours and not only_base
    if same_ids:
        ours_c, base_c = result, baseline  # already scored on the same set
    else:
        ours_c = _restrict(result, common, options, metric)
        base_c = _restrict(baseline, common, options, metric)
    different = [i for i in common if list(ours_by_id[i]["references"]) != list(base_by_id[i]["references"])]
    warnings = []
    if not same_ids:
        warnings.append(
            f"the baseline covers {len(common)} of the {len(ours_ids)} predictions ({only_ours} only in the "
            f"predictions, {only_base} only in the baseline): both are scored again on the {len(common)} common "
            "ids for the comparison")
    if different:
        warnings.append(f"{len(different)} common ids have other references in the baseline (e.g. "
                        f"{_sample(different)}): their scores do not compare")
    items: Dict[str, dict] = {}
    base_items = {it["id"]: it for it in base_c["items"]}
    for it in ours_c["items"]:
        items[it["id"]] = {"predictions": it["scores"], "baseline": base_items[it["id"]]["scores"]}
    return {"source": baseline.get("source"), "corpus": base_c["corpus"], "predictions_corpus": ours_c["corpus"],
            "common": len(common), "only_in_predictions": only_ours, "only_in_baseline": only_base,
            "same_ids": same_ids, "different_references": different, "warnings": warnings, "items": items}
