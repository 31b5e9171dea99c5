"""``ivl3 eval PREDICTIONS``: BLEU-4, METEOR, ROUGE-L, CIDEr-D (and more) for a predictions file."""
from __future__ import annotations

from pathlib import Path


def add_metric_options(p) -> None:
    """Scoring options shared by ``ivl3 eval`` and ``ivl3 report``."""
    p.add_argument("--language", default="en", help="en (default), zh, ja, ko, ...: tokeniser and METEOR language")
    p.add_argument("--tokenize", choices=["coco", "13a", "char", "whitespace"],
                   help="default: coco (PTB-like) for English, char for zh/ja/ko, else 13a")
    p.add_argument("--stemmer", action="store_true", help="Porter stemming in ROUGE (English)")
    p.add_argument("--meteor", choices=["auto", "on", "off"], default="auto",
                   help="auto: when java and meteor-1.5.jar are found (default)")
    p.add_argument("--meteor-jar", help="path of meteor-1.5.jar (else the METEOR_JAR setting or pycocoevalcap's)")
    p.add_argument("--bertscore-model", help="local encoder directory: adds BERTScore")
    p.add_argument("--metric", default="ivl3_summary",
                   help="registered metric to score with (`ivl3 plugins` lists them; default ivl3_summary)")


def options_from_args(args):
    from ..metric.scoring import ScoreOptions

    meteor = {"auto": "auto", "on": True, "off": False}[args.meteor]
    if args.bertscore_model and not Path(args.bertscore_model).is_dir():
        from . import UserError

        raise UserError(f"--bertscore-model {args.bertscore_model}: not a local model directory")
    return ScoreOptions(language=args.language, tokenize=args.tokenize, use_stemmer=args.stemmer, meteor=meteor,
                        meteor_jar=args.meteor_jar, bertscore_model=args.bertscore_model)


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="score a predictions file (ms-swift infer JSONL, ivl3 JSONL, "
                                    "evaluation_results.json) and write the scores as JSON")
    p.add_argument("predictions", help="predictions file")
    p.add_argument("--out", help="JSON output (default: <predictions>.scores.json)")
    p.add_argument("--baseline", help="a second predictions file to compare against (e.g. before fine-tuning)")
    add_metric_options(p)
    p.set_defaults(func=run)


def score_files(args, out_suffix: str, write=None):
    """The predictions (and baseline) scored with ``args.metric``, and the output path checked first.

    The shared front of ``ivl3 eval`` and ``ivl3 report``: bad files fail first, named, before any
    scoring; a baseline must share ids with the predictions (``metric/compare.py``) and is compared on
    the common ones. ``write(result, out, baseline, comparison)`` runs inside the same error handling.
    Returns ``(result, comparison, out)``."""
    from ..metric.compare import check_overlap, compare
    from ..metric.evaluation import MetricError, evaluate_predictions
    from ..metric.predictions import PredictionsError, load_predictions
    from ..shared.atomic import check_writable_file
    from . import UserError

    opts = options_from_args(args)
    try:
        preds = load_predictions(args.predictions)
        base_preds = load_predictions(args.baseline) if args.baseline else None
        if base_preds:
            check_overlap([p.id for p in preds], [p.id for p in base_preds], args.predictions, args.baseline)
        out = check_writable_file(Path(args.out) if args.out else Path(args.predictions).with_suffix(out_suffix),
                                  "--out")
        result = dict(evaluate_predictions(preds, opts, metric=args.metric), source=str(args.predictions))
        baseline = (dict(evaluate_predictions(base_preds, opts, metric=args.metric), source=str(args.baseline))
                    if base_preds else None)
        comparison = compare(result, baseline, opts, args.metric) if baseline else None
        if write is not None:
            write(result, out, baseline, comparison)
    except (PredictionsError, MetricError) as exc:
        raise UserError(str(exc)) from None
    except RuntimeError as exc:  # e.g. --meteor on without java
        raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return result, comparison, out


def run(args) -> int:
    import sys

    from ..metric.evaluation import format_table, write_json

    result, comparison, out = score_files(args, ".scores.json")
    if comparison:
        result["baseline"] = {k: v for k, v in comparison.items() if k != "items"}
    write_json(result, out)
    print(format_table(result, comparison))
    for w in comparison["warnings"] if comparison else ():
        print(f"ivl3 eval: warning: {w}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
