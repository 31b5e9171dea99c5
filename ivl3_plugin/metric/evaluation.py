"""Score a predictions file with a registered metric: the engine of ``ivl3 eval`` and of the report's numbers.

The metric comes from the ``register_metrics`` registry by name (default ``ivl3_summary``, the
built-in), so a plugin's metric scores ``ivl3 eval --metric NAME`` and ``ivl3 report --metric NAME``.
A metric that keeps per-item scores (``last_scores``, as ours does) gives them in one pass; any
other ``evaluate.Metric`` is also run once per item for the report's per-sample scores.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..shared.atomic import write_text_atomic
from ..shared.errors import InputError
from . import METRIC_NAME
from .predictions import Prediction, load_predictions, parse_row
from .scoring import ScoreOptions, Scores

# the order papers print them in; anything else follows alphabetically
HEADLINE = ("bleu4", "meteor", "rougeL", "cider", "bleu1", "bleu2", "bleu3", "rouge1", "rouge2", "rougeLsum",
            "bertscore_f1", "bertscore_precision", "bertscore_recall")
LABELS = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "meteor": "METEOR",
          "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum",
          "cider": "CIDEr-D", "bertscore_f1": "BERTScore-F1", "bertscore_precision": "BERTScore-P",
          "bertscore_recall": "BERTScore-R"}


def ordered_keys(keys) -> List[str]:
    keys = list(keys)
    return [k for k in HEADLINE if k in keys] + sorted(k for k in keys if k not in HEADLINE)


class MetricError(InputError):
    """No metric of that name, or one that does not return plain numbers."""


def metric_class(name: str):
    """The metric registered as ``name`` (``register_metrics``)."""
    from ..plugins import get_plugins

    try:
        return get_plugins().metrics.get(name)
    except KeyError as exc:
        hint = " (the built-in needs the metrics extra: pip install 'ivl3-plugin[metrics]')" if name == METRIC_NAME else ""
        raise MetricError(f"{exc.args[0]}{hint}") from None


def score_with(name: str, predictions: List[str], references: List[List[str]], options: ScoreOptions) -> Scores:
    """Corpus and per-item scores from the registered metric ``name``."""
    cls = metric_class(name)
    metric = cls(keep_in_memory=True)
    if getattr(cls, "takes_score_options", False):  # ours: options are compute() keywords, per item kept
        corpus = metric.compute(predictions=predictions, references=references, **dataclasses.asdict(options))
        return Scores(_numbers(name, corpus), metric.last_scores.per_item, list(metric.last_scores.notes))
    notes = [] if options == ScoreOptions() else [f"scoring options apply to {METRIC_NAME} only; "
                                                   f"metric {name} ran with its own defaults"]
    refs = _references_for(name, cls, predictions, references)
    corpus = _numbers(name, metric.compute(predictions=predictions, references=refs))
    per_item = [_numbers(name, cls(keep_in_memory=True).compute(predictions=[p], references=[r]))
                for p, r in zip(predictions, refs)]
    return Scores(corpus, per_item, notes)


def _references_for(name: str, cls, predictions: List[str], references: List[List[str]]):
    """Lists of references, or plain strings for a metric whose features take one reference per item
    (a throwaway instance checks the first item against the metric's declared features)."""
    try:
        cls(keep_in_memory=True).add_batch(predictions=predictions[:1], references=references[:1])
        return references
    except (ValueError, TypeError):
        pass
    if any(len(r) != 1 for r in references):
        raise MetricError(f"metric {name} takes one reference per item; some items have several")
    return [r[0] for r in references]


def _numbers(name: str, result) -> dict:
    if not isinstance(result, dict):
        raise MetricError(f"metric {name} returned {type(result).__name__}, not a dict of numbers")
    try:
        return {k: float(v) for k, v in result.items()}
    except (TypeError, ValueError):
        raise MetricError(f"metric {name} returned a value that is not a number: {result!r}") from None


def evaluate_predictions(preds: Union[str, Path, Sequence[Union[Prediction, dict]]], options: Optional[ScoreOptions] = None,
                         metric: str = METRIC_NAME, **kwargs) -> dict:
    """``{"corpus": {...}, "items": [{id, reference(s), prediction, frames, scores}], "notes", "options"}``."""
    source = None
    if isinstance(preds, (str, Path)):
        source = str(preds)
        preds = load_predictions(preds)
    else:  # Prediction objects, or rows in any shape load_predictions reads
        preds = [p if isinstance(p, Prediction) else parse_row(p, f"predictions[{i}]", i)
                 for i, p in enumerate(preds)]
    opts = options or ScoreOptions(**kwargs)
    result = score_with(metric, [p.prediction for p in preds], [p.references for p in preds], opts)
    items = [{"id": p.id, "references": p.references, "prediction": p.prediction, "frames": p.frames,
              "scores": s} for p, s in zip(preds, result.per_item)]
    return {"source": source, "num_items": len(items), "corpus": result.corpus, "items": items,
            "notes": result.notes, "metric": metric,
            "options": {**opts.__dict__, "tokenize": opts.resolved_tokenize()}}


def format_table(result: dict, baseline: Optional[dict] = None) -> str:
    """A plain-text table of corpus scores; with a baseline (a :func:`~.compare.compare` result, or a second
    ``evaluate_predictions`` result to compare by id) a baseline column and the change.

    When the id sets differ, a column gives our scores on the common ids, the change is computed there,
    and the warning is printed under the table.
    """
    cmp = baseline
    if baseline is not None and "predictions_corpus" not in baseline:
        from .compare import compare

        cmp = compare(result, baseline)
    keys = ordered_keys(result["corpus"])
    partial = cmp is not None and not cmp["same_ids"]
    head = ("metric", "score")
    if cmp is not None:
        head += ((f"on {cmp['common']} common",) if partial else ()) + ("baseline", "change")
    rows = [head]
    for k in keys:
        row = (LABELS.get(k, k), f"{result['corpus'][k]:.2f}")
        if cmp is not None:
            ours, b = cmp["predictions_corpus"].get(k), cmp["corpus"].get(k)
            if partial:
                row += ("-" if ours is None else f"{ours:.2f}",)
            row += (f"{b:.2f}", f"{ours - b:+.2f}") if b is not None and ours is not None else ("-", "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"({result['num_items']} items; scores x100; tokenize={result['options']['tokenize']})")
    lines.extend(result.get("notes", []))
    if cmp is not None:
        lines.extend(f"warning: {w}" for w in cmp["warnings"])
    return "\n".join(lines)


def write_json(result: dict, path: Union[str, Path]) -> Path:
    return write_text_atomic(path, json.dumps(result, indent=2, ensure_ascii=False))
