"""``ivl3``: one sub-command per module in this package.

Each module ``ivl3_plugin/cli/<name>.py`` defines ``add_parser(subparsers)``
which registers its sub-command and sets ``func`` (taking the parsed args,
returning an exit status).  Modules import their heavy dependencies inside
``func`` so ``ivl3 --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivl3", description="Fine-tune InternVL3 for video summarisation (ms-swift / LLaMA-Factory)."
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"ivl3-plugin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"ivl3 {args.command}: error: {exc}", file=sys.stderr)
        return 2


class UserError(Exception):
    """An error in the user's input: printed as one line, exit status 2."""


if __name__ == "__main__":
    sys.exit(main())
