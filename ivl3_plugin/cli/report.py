"""``ivl3 report PREDICTIONS``: a self-contained HTML page of scores, frames and summaries."""
from __future__ import annotations

from ._types import POSITIVE_INT


from .eval import add_metric_options, options_from_args, score_files


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report (frames, reference vs prediction, "
                                      "scores, sortable worst-first)")
    p.add_argument("predictions", help="predictions file (ivl3 JSONL, swift infer JSONL, evaluation_results.json)")
    p.add_argument("--baseline", help="predictions of another model (e.g. before fine-tuning) to compare against")
    p.add_argument("--out", help="HTML file (default: <predictions>.report.html)")
    p.add_argument("--title", default="ivl3 summary report")
    p.add_argument("--max-frames", type=POSITIVE_INT, default=6, help="key frames shown per sample")
    add_metric_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..metric.report import write_report

    def write(result, out, baseline, comparison):
        write_report(result, out, baseline=baseline, options=options_from_args(args), title=args.title,
                     max_frames=args.max_frames, metric=args.metric, comparison=comparison)

    result, comparison, out = score_files(args, ".report.html", write)
    for w in comparison["warnings"] if comparison else ():
        print(f"ivl3 report: warning: {w}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
