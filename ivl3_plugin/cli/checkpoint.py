"""``ivl3 checkpoint to-hf | to-remote | info``: the user's own InternVL3 checkpoint, in either format.

Exit status: 0 on success, 2 (one line on stderr) for a refused input: neither format, a missing shard, a
mismatched tensor shape, DST inside SRC, DST existing without --overwrite, InternVL3-9B (InternLM3).
"""
from __future__ import annotations

from . import UserError


def _common(p) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists (atomically)")
    p.add_argument("--max-shard-size", default="5GB", help="largest output shard (default 5GB)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub) -> None:
    p = sub.add_parser("checkpoint", help="convert an InternVL3 checkpoint between remote-code and -hf formats",
                       description=__doc__.split("\n\n")[0])
    cmds = p.add_subparsers(dest="checkpoint_command", metavar="ACTION")
    h = cmds.add_parser("to-hf", help="write SRC (either format) as a transformers-native -hf folder DST")
    h.add_argument("src")
    h.add_argument("dst")
    _common(h)
    h.set_defaults(func=run_to_hf)
    r = cmds.add_parser("to-remote", help="write SRC (either format) as a remote-code folder DST")
    r.add_argument("src")
    r.add_argument("dst")
    r.add_argument("--code-from", help="folder with the remote modeling files (e.g. the original OpenGVLab "
                                       "checkpoint); default: SRC when it is a remote checkpoint")
    _common(r)
    r.set_defaults(func=run_to_remote)
    i = cmds.add_parser("info", help="format, sizes, problems and the command that fixes them")
    i.add_argument("dir")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _convert(args, fmt: str, code_from=None) -> int:
    from ..checkpoint import CheckpointError
    from ..checkpoint.converter import convert

    try:
        out = convert(args.src, args.dst, fmt, code_from=code_from, overwrite=args.overwrite,
                      max_shard_size=args.max_shard_size, progress=not args.no_progress)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    print(out)
    return 0


def run_to_hf(args) -> int:
    return _convert(args, "hf")


def run_to_remote(args) -> int:
    return _convert(args, "remote", code_from=args.code_from)


def run_info(args) -> int:
    import json

    from ..checkpoint import CheckpointError
    from ..checkpoint.info import describe, format_report

    try:
        report = describe(args.dir)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0
