"""Score a predictions file: the engine of ``ivl3 eval`` and of the report's numbers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence, Union

from .predictions import Prediction, load_predictions, parse_row
from .scoring import ScoreOptions, score

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


def evaluate_predictions(preds: Union[str, Path, Sequence[Union[Prediction, dict]]], options: Optional[ScoreOptions] = None,
                         **kwargs) -> dict:
    """``{"corpus": {...}, "items": [{id, reference(s), prediction, frames, scores}], "notes", "options"}``."""
    source = None
    if isinstance(preds, (str, Path)):
        source = str(preds)
        preds = load_predictions(preds)
    else:  # Prediction objects, or rows in any shape load_predictions reads
        preds = [p if isinstance(p, Prediction) else parse_row(p, f"predictions[{i}]", i)
                 for i, p in enumerate(preds)]
    opts = options or ScoreOptions(**kwargs)
    result = score([p.prediction for p in preds], [p.references for p in preds], opts)
    items = [{"id": p.id, "references": p.references, "prediction": p.prediction, "frames": p.frames,
              "scores": s} for p, s in zip(preds, result.per_item)]
    return {"source": source, "num_items": len(items), "corpus": result.corpus, "items": items,
            "notes": result.notes, "options": {**opts.__dict__, "tokenize": opts.resolved_tokenize()}}


def format_table(result: dict, baseline: Optional[dict] = None) -> str:
    """A plain-text table of corpus scores (with a baseline column and the change when given)."""
    keys = ordered_keys(result["corpus"])
    rows = [("metric", "score") + (("baseline", "change") if baseline else ())]
    for k in keys:
        row = (LABELS.get(k, k), f"{result['corpus'][k]:.2f}")
        if baseline:
            b = baseline["corpus"].get(k)
            row += (f"{b:.2f}", f"{result['corpus'][k] - b:+.2f}") if b is not None else ("-", "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"({result['num_items']} items; scores x100; tokenize={result['options']['tokenize']})")
    lines.extend(result.get("notes", []))
    return "\n".join(lines)


def write_json(result: dict, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
