"""``ivl3 export RUN_OR_CHECKPOINT DST``: a trained model as a standalone folder (LoRA merged into its base).

RUN_OR_CHECKPOINT is an ms-swift output folder (its last checkpoint-N is taken) or one checkpoint folder: a
LoRA adapter (merged into --base, else the base it names) or a full checkpoint.  Exit status 2 (one line on
stderr) for a refused input, e.g. a checkpoint holding only DeepSpeed ZeRO shards.
"""
from __future__ import annotations

from . import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="merge a LoRA run into its base (or take a full checkpoint) and write "
                                      "it in -hf or remote-code format", description=__doc__.split("\n\n")[0])
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--format", choices=["hf", "remote"], default="hf", help="output format (default: hf)")
    p.add_argument("--base", help="base model folder (default: the one the adapter / args.json names)")
    p.add_argument("--code-from", help="remote modeling files for --format remote (default: the remote "
                                       "checkpoint or base itself)")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists (atomically)")
    p.add_argument("--max-shard-size", default="5GB", help="largest output shard (default 5GB)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoint import CheckpointError
    from ..checkpoint.export import export

    try:
        out = export(args.run, args.dst, format=args.format, base=args.base, code_from=args.code_from,
                     overwrite=args.overwrite, max_shard_size=args.max_shard_size, progress=not args.no_progress)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    print(out)
    return 0
