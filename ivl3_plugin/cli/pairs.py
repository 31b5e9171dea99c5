"""``ivl3 pairs``: preference pairs (chosen, rejected) per video for MPO/DPO, from sampled candidates.

Either sample the candidates here (``--model``/``--adapters``: ``ivl3 predict --num-samples N``
through the real ``swift infer``, written to ``OUT/candidates.jsonl`` and reused when the command
runs again, so a changed ``--margin`` or ``--metric`` does not sample again) or give an existing
candidates predictions file (``--candidates FILE``).  docs/preference.md.
"""
from __future__ import annotations

import json

from ._types import POSITIVE_INT, number
from .predict import SEED

CANDIDATES_FILE = "candidates.jsonl"
PARAMS_FILE = "candidates.params.json"  # how the candidates were sampled: a rerun reuses them only if the same


def add_parser(sub) -> None:
    p = sub.add_parser("pairs", help="build preference pairs (chosen/rejected) for swift rlhf / LLaMA-Factory DPO")
    p.add_argument("--dataset", required=True, help="converted dataset JSONL (e.g. <out>/swift/train.jsonl)")
    p.add_argument("--out", required=True, help="output folder: swift/pairs.jsonl, llamafactory/pairs.json + "
                                                "dataset_info.json, pairs.report.json")
    src = p.add_argument_group("candidates (one of)")
    src.add_argument("--candidates", help="predictions file with 'candidates' per id (ivl3 predict --num-samples N)")
    src.add_argument("--model", help="model dir to sample candidates with (as ivl3 predict --model)")
    src.add_argument("--adapters", nargs="+", help="LoRA checkpoint dir(s) to sample with (as ivl3 predict)")
    s = p.add_argument_group("sampling (with --model/--adapters)")
    s.add_argument("--num-samples", type=number(int, 2, what="must be >= 2"), default=4,
                   help="candidates per video (default 4)")
    s.add_argument("--temperature", type=number(float, 0, low_open=True, what="must be > 0"), default=1.0,
                   help="sampling temperature (default 1.0)")
    s.add_argument("--seed", type=SEED, default=0, help="sampling seed, and the seed of tie-breaks (default 0)")
    s.add_argument("--template", default="ivl3_video")
    s.add_argument("--max-new-tokens", type=POSITIVE_INT, default=128)
    s.add_argument("--max-batch-size", type=POSITIVE_INT, default=4)
    q = p.add_argument_group("pairs")
    q.add_argument("--metric", default=None, help="registered metric scoring each candidate (default ivl3_summary)")
    q.add_argument("--score", default=None, help="KEY=WEIGHT,... over the metric's per-item scores "
                                                 "(default for ivl3_summary: cider=0.5,rougeL=0.5)")
    q.add_argument("--chosen", choices=("reference", "best"), default="reference",
                   help="chosen = the reference summary (default) or the best-scoring candidate")
    q.add_argument("--margin", type=number(float, 0, what="must be >= 0"), default=0.0,
                   help="skip a video whose best and worst candidate scores differ by less (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar / lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from ..metric import METRIC_NAME
    from ..preference.build import PairOptions, build_pairs, summary_lines
    from ..preference.scoring import check_metric, parse_weights
    from . import UserError

    sampling = bool(args.model or args.adapters)
    if sampling == bool(args.candidates):
        raise UserError("give either --candidates FILE or --model/--adapters to sample candidates with (not both)")
    if not Path(args.dataset).is_file():
        raise UserError(f"--dataset {args.dataset}: no such file" if not Path(args.dataset).exists() else
                        f"--dataset {args.dataset}: not a file (give a converted JSONL, e.g. <out>/swift/train.jsonl)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a folder")
    weights = parse_weights(args.score)  # option errors before a long sampling run, not after it
    check_metric(args.metric or METRIC_NAME)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if not args.no_progress else None
    candidates = Path(args.candidates) if args.candidates else _sample(args, out / CANDIDATES_FILE, say)
    options = PairOptions(metric=args.metric or METRIC_NAME, weights=weights, chosen=args.chosen,
                          margin=args.margin, seed=args.seed)
    result = build_pairs(args.dataset, candidates, out, options, progress=say)
    for line in summary_lines(result)[1:]:
        print(line, file=sys.stderr)
    print(summary_lines(result)[0])
    print(f"wrote {result.outputs['swift']}, {result.outputs['llamafactory']} and {result.outputs['report']}")
    return 1 if result.bad_input or not result.pairs else 0


def _sample(args, path, say):
    """``OUT/candidates.jsonl``: sampled now through ``ivl3 predict``'s host call, or the one a previous run wrote."""
    from pathlib import Path

    from ..hosts import get_host
    from ..hosts.protocol import HostError, PredictRequest
    from ..metric.predictions import PredictionsError
    from ..shared.atomic import write_text_atomic
    from . import UserError

    params = _sampling_params(args)
    params_path = path.with_name(PARAMS_FILE)
    if path.is_file():
        _check_reuse(path, params_path, params, args.num_samples)
        if say:
            say(f"ivl3 pairs: reusing the candidates in {path} (delete it to sample again)")
        return path
    for p in [args.model, *(args.adapters or [])]:
        if p and not Path(p).is_dir():
            raise UserError(f"{p}: not a local model/checkpoint directory")
    request = PredictRequest(args.model, args.dataset, path, adapters=args.adapters or (), template=args.template,
                             max_new_tokens=args.max_new_tokens, max_batch_size=args.max_batch_size,
                             progress=say is not None, num_samples=args.num_samples,
                             temperature=args.temperature, seed=args.seed)
    write_text_atomic(params_path, json.dumps(params, indent=2) + "\n")  # before: a kill leaves no file unnamed
    try:
        return get_host("swift").predict(request)
    except (HostError, PredictionsError) as exc:
        raise UserError(str(exc)) from None


def _sampling_params(args) -> dict:
    """What decides the candidates: a reused file must have been sampled with exactly these."""
    from pathlib import Path

    return {"dataset": str(Path(args.dataset).resolve()),
            "model": str(Path(args.model).resolve()) if args.model else None,
            "adapters": [str(Path(a).resolve()) for a in args.adapters or []],
            "template": args.template, "num_samples": args.num_samples, "temperature": args.temperature,
            "seed": args.seed, "max_new_tokens": args.max_new_tokens, "max_batch_size": args.max_batch_size}


def _check_reuse(path, params_path, params: dict, num_samples: int) -> None:
    """Refuse to reuse candidates sampled otherwise (other model, seed, count, …): they would not be this run's."""
    from ..metric.predictions import PredictionsError, load_predictions
    from . import UserError

    if params_path.is_file():
        try:
            before = json.loads(params_path.read_text(encoding="utf-8"))
        except ValueError:
            before = {}
        changed = [k for k in params if before.get(k) != params[k]]
        if changed:
            was = ", ".join(f"{k}: {before.get(k)!r}" for k in changed)
            now = ", ".join(f"{params[k]!r}" for k in changed)
            raise UserError(f"{path} was sampled with other settings ({was}; now {now}): delete it to sample again")
        return
    try:  # a candidates file put there by hand: at least the count must be the one asked for
        counts = {len(p.candidates or [p.prediction]) for p in load_predictions(path)}
    except PredictionsError as exc:
        raise UserError(f"{exc} (delete {path} to sample again)") from None
    if counts != {num_samples}:
        raise UserError(f"{path} holds {'/'.join(map(str, sorted(counts)))} candidates per video, not "
                        f"--num-samples {num_samples}: delete it to sample again, or give the same count")
