"""``ivl3 report PREDICTIONS``: a self-contained HTML page of scores, frames and summaries."""
from __future__ import annotations

from pathlib import Path

from .eval import add_metric_options, options_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report (frames, reference vs prediction, "
                                      "scores, sortable worst-first)")
    p.add_argument("predictions", help="predictions file (ivl3 JSONL, swift infer JSONL, evaluation_results.json)")
    p.add_argument("--baseline", help="predictions of another model (e.g. before fine-tuning) to compare against")
    p.add_argument("--out", help="HTML file (default: <predictions>.report.html)")
    p.add_argument("--title", default="ivl3 summary report")
    p.add_argument("--max-frames", type=int, default=6, help="key frames shown per sample")
    add_metric_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..metric.predictions import PredictionsError
    from ..metric.report import write_report
    from . import UserError

    out = Path(args.out) if args.out else Path(args.predictions).with_suffix(".report.html")
    try:
        write_report(args.predictions, out, baseline=args.baseline, options=options_from_args(args),
                     title=args.title, max_frames=args.max_frames)
    except (PredictionsError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {out}")
    return 0
