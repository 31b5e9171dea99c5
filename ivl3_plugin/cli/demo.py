"""``ivl3 demo``: train the tiny InternVL3 on the bundled videos and show before/after scores."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded default: tiny model + bundled videos")
    p.add_argument("--out", type=Path, default=Path("ivl3-demo"), help="where predictions, logs and report go")
    p.add_argument("--steps", type=int, help="training steps (default: the tiny-cpu recipe's max_steps)")
    p.add_argument("--num-frames", "--frames", dest="frames", type=int,
                   help="frames sampled per video (default: the tiny-cpu recipe's frames)")
    p.add_argument("--model-dir", type=Path, default=None, help="reuse/build the tiny model here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DemoSettings, format_table, run_demo

    # absolute: the trained run's args.json names the model, and swift would take a relative name for a hub id
    model_dir = args.model_dir.expanduser().resolve() if args.model_dir else None
    result = run_demo(DemoSettings(out_dir=args.out.resolve(), steps=args.steps, num_frames=args.frames,
                                   model_dir=model_dir))
    print(format_table(result))
    return 0
