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
    p.add_argument("--meteor-jar", help="path of meteor-1.5.jar (else $IVL3_METEOR_JAR or pycocoevalcap's)")
    p.add_argument("--bertscore-model", help="local encoder directory: adds BERTScore")


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


def run(args) -> int:
    from ..metric.evaluation import evaluate_predictions, format_table, write_json
    from ..metric.predictions import PredictionsError
    from . import UserError

    opts = options_from_args(args)
    try:
        result = evaluate_predictions(args.predictions, opts)
        baseline = evaluate_predictions(args.baseline, opts) if args.baseline else None
    except PredictionsError as exc:
        raise UserError(str(exc)) from None
    except RuntimeError as exc:  # e.g. --meteor on without java
        raise UserError(str(exc)) from None
    out = Path(args.out) if args.out else Path(args.predictions).with_suffix(".scores.json")
    if baseline:
        result["baseline"] = {"source": baseline["source"], "corpus": baseline["corpus"]}
    write_json(result, out)
    print(format_table(result, baseline))
    print(f"wrote {out}")
    return 0
