"""``ivl3 predict``: generate summaries for a converted dataset with the real ``swift infer``."""
from __future__ import annotations

from ._types import POSITIVE_INT, number

NON_NEGATIVE = number(float, 0, what="must be >= 0")
SEED = number(int, 0, what="must be >= 0")


def add_sampling_arguments(p) -> None:
    """``--num-samples/--temperature/--seed``: shared with ``ivl3 pairs``, which samples through predict."""
    p.add_argument("--num-samples", type=POSITIVE_INT, default=1,
                   help="candidate summaries per video (default 1: greedy); > 1 needs --temperature > 0 and "
                        "writes them as 'candidates' (prediction = the first)")
    p.add_argument("--temperature", type=NON_NEGATIVE, default=0.0, help="sampling temperature (0: greedy)")
    p.add_argument("--seed", type=SEED, default=0, help="swift's --seed when sampling: same seed, same candidates")


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="run `swift infer` on a converted dataset and write ivl3 predictions JSONL")
    p.add_argument("--model", help="model dir: the checkpoint after a full fine-tune, or the base model for LoRA "
                                   "(a LoRA checkpoint given here is passed as --adapters, base from its args.json)")
    p.add_argument("--adapters", nargs="+", help="LoRA checkpoint dir(s) (swift reads the base from args.json)")
    p.add_argument("--dataset", required=True, help="converted dataset JSONL (e.g. <out>/swift/val.jsonl)")
    p.add_argument("--out", required=True, help="predictions JSONL to write")
    p.add_argument("--template", default="ivl3_video")
    p.add_argument("--max-new-tokens", type=POSITIVE_INT, default=128)
    p.add_argument("--max-batch-size", type=POSITIVE_INT, default=4)
    add_sampling_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar / progress lines on stderr")
    p.add_argument("--eval", action="store_true", help="also score the predictions and print the table")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..hosts import get_host
    from ..hosts.protocol import HostError, PredictRequest
    from ..metric.predictions import PredictionsError
    from . import UserError

    if not args.model and not args.adapters:
        raise UserError("give --model (full fine-tune / base model) and/or --adapters (LoRA checkpoint)")
    if args.num_samples > 1 and args.temperature <= 0:
        raise UserError(f"--num-samples {args.num_samples} needs --temperature > 0 (greedy decoding gives the same "
                        f"summary every time), e.g. --temperature 1.0")
    for p in [args.model, *(args.adapters or [])]:
        if p and not Path(p).is_dir():
            raise UserError(f"{p}: not a local model/checkpoint directory")
    if not Path(args.dataset).is_file():
        raise UserError(f"--dataset {args.dataset}: no such file" if not Path(args.dataset).exists() else
                        f"--dataset {args.dataset}: not a file (give a converted JSONL, e.g. <out>/swift/val.jsonl)")
    request = PredictRequest(args.model, args.dataset, args.out, adapters=args.adapters or (), template=args.template,
                             max_new_tokens=args.max_new_tokens, max_batch_size=args.max_batch_size,
                             progress=not args.no_progress, num_samples=args.num_samples,
                             temperature=args.temperature, seed=args.seed)
    try:
        out = get_host("swift").predict(request)
    except (HostError, PredictionsError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {out}")
    if args.eval:
        from ..metric.evaluation import evaluate_predictions, format_table

        print(format_table(evaluate_predictions(out)))
    return 0
