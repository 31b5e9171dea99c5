"""``ivl3 tiny-model DIR``: build the tiny offline InternVL3 used by the demo and the tests."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("tiny-model", help="build a tiny random-init InternVL3 (transformers-native) offline")
    p.add_argument("dir", nargs="?", help="output directory (default: $IVL3_HOME/tiny-internvl3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..tiny import build_tiny_model, default_tiny_model_dir
    from ..tiny.model import demo_text

    out = build_tiny_model(args.dir or default_tiny_model_dir(), seed=args.seed, extra_text=demo_text(),
                           overwrite=args.overwrite)
    print(out)
    return 0
