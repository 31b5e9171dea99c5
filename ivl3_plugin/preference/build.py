"""``ivl3 pairs`` end to end: read, match, score, select, write both formats and the report.

The report (``pairs.report.json`` in the output folder, and on stderr) gives the counts kept and
skipped, the count per reason, and one line per skipped row (``file:row``, id, reason, detail), in
the spirit of ``ivl3 convert``'s skipped report: no row disappears without a line saying why.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

from ..metric import METRIC_NAME
from ..metric.scoring import ScoreOptions
from ..shared.atomic import write_text_atomic
from .formats import write_pairs
from .inputs import BAD_INPUT, PairsError, Skip, attach_candidates, read_candidates, read_dataset
from .scoring import check_metric, score_items
from .selection import CHOSEN_MODES, Pair, select_pairs

PathLike = Union[str, os.PathLike]
REPORT_FILE = "pairs.report.json"


@dataclass
class PairOptions:
    metric: str = METRIC_NAME
    weights: Optional[Dict[str, float]] = None  # None: 0.5·cider + 0.5·rougeL for ivl3_summary
    chosen: str = "reference"
    margin: float = 0.0
    seed: int = 0
    score_options: Optional[ScoreOptions] = None


@dataclass
class PairsResult:
    pairs: List[Pair]
    skipped: List[Skip]
    outputs: Dict[str, str]
    report: dict
    weights: Dict[str, float] = field(default_factory=dict)

    @property
    def bad_input(self) -> List[Skip]:
        return [s for s in self.skipped if s.reason in BAD_INPUT]


def build_pairs(dataset: PathLike, candidates: PathLike, out_dir: PathLike, options: Optional[PairOptions] = None,
                progress: Optional[Callable[[str], None]] = None) -> PairsResult:
    """Pairs for every usable row of ``dataset`` from the candidates in ``candidates``, written under ``out_dir``."""
    opts = options or PairOptions()
    if opts.chosen not in CHOSEN_MODES:
        raise PairsError(f"--chosen {opts.chosen!r}: give one of {', '.join(CHOSEN_MODES)}")
    if opts.margin < 0:
        raise PairsError(f"--margin {opts.margin:g}: must be >= 0")
    check_metric(opts.metric)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PairsError(f"--out {out_dir}: not a folder")
    items, skipped, ids = read_dataset(dataset)
    items = attach_candidates(items, skipped, ids, read_candidates(candidates), str(candidates))
    dropped = [{"where": i.where, "id": i.id, "why": why} for i in items for why in i.dropped]
    scored, weights = score_items(items, opts.metric, opts.weights, opts.score_options, progress)
    pairs, not_paired = select_pairs(scored, opts.chosen, opts.margin, opts.seed)
    skipped.extend(not_paired)
    order = {i: n for n, i in enumerate(ids)}
    skipped.sort(key=lambda s: order[s.id])
    outputs = write_pairs(pairs, out_dir)
    report = {
        "dataset": str(dataset), "candidates": str(candidates), "metric": opts.metric, "score_weights": weights,
        "chosen": opts.chosen, "margin": opts.margin, "seed": opts.seed,
        "rows": len(ids), "kept": len(pairs), "skipped": len(skipped),
        "skipped_by_reason": dict(sorted(Counter(s.reason for s in skipped).items())),
        "skipped_rows": [s.to_json() for s in skipped],
        "candidates_dropped": dropped,
        "pairs": [p.to_json() for p in pairs],
        "outputs": outputs,
    }
    outputs["report"] = str(write_text_atomic(out_dir / REPORT_FILE,
                                              json.dumps(report, indent=2, ensure_ascii=False) + "\n"))
    return PairsResult(pairs, skipped, outputs, report, weights)


def summary_lines(result: PairsResult, limit: int = 20) -> List[str]:
    """What ``ivl3 pairs`` prints: the counts, the reasons, the first ``limit`` skipped rows."""
    r = result.report
    reasons = ", ".join(f"{k} {v}" for k, v in r["skipped_by_reason"].items())
    lines = [f"{r['kept']} pairs kept, {r['skipped']} rows skipped of {r['rows']}" + (f" ({reasons})" if reasons else "")
             + "; score = " + " + ".join(f"{w:g}*{k}" for k, w in r["score_weights"].items())
             + f" ({r['metric']}), chosen = {r['chosen']}, margin {r['margin']:g}"]
    for s in result.skipped[:limit]:
        lines.append(f"  skipped {s.where} ({s.id}): {s.reason}: {s.detail}")
    dropped = r.get("candidates_dropped", [])
    if dropped:
        lines.append(f"  {len(dropped)} candidate(s) left out of kept rows (image markup in the text), e.g. "
                     f"{dropped[0]['where']} ({dropped[0]['id']}): {dropped[0]['why']}; all in {result.outputs['report']}")
    if len(result.skipped) > limit:
        lines.append(f"  ... {len(result.skipped) - limit} more in {result.outputs['report']}")
    return lines
