"""``ivl3 demo``: train the tiny InternVL3 on the bundled videos and show before/after scores."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded default: tiny model + bundled videos")
    p.add_argument("--out", type=Path, default=Path("ivl3-demo"), help="where predictions, logs and report go")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--frames", type=int, default=4, help="frames sampled per video")
    p.add_argument("--model-dir", type=Path, default=None, help="reuse/build the tiny model here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DemoSettings, format_table, run_demo

    result = run_demo(DemoSettings(out_dir=args.out.resolve(), steps=args.steps, num_frames=args.frames,
                                   model_dir=args.model_dir))
    print(format_table(result))
    return 0
