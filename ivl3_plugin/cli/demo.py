"""``ivl3 demo``: train the tiny InternVL3 on the bundled videos and show before/after scores."""
from __future__ import annotations

from pathlib import Path

from ..demo_mpo import MpoSettings
from ._types import POSITIVE_INT, number
from .predict import SEED


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded default: tiny model + bundled videos")
    p.add_argument("--out", type=Path, default=Path("ivl3-demo"), help="where predictions, logs and report go")
    p.add_argument("--steps", type=int, help="training steps (default: the tiny-cpu recipe's max_steps)")
    p.add_argument("--num-frames", "--frames", dest="frames", type=int,
                   help="frames sampled per video (default: the tiny-cpu recipe's frames)")
    p.add_argument("--model-dir", type=Path, default=None, help="reuse/build the tiny model here")
    m = p.add_argument_group("MPO round after SFT (issue #19; docs/demo.md)")
    m.add_argument("--mpo", action="store_true", help="after SFT: sample candidates on train films, build pairs, "
                                                      "train one MPO round (tiny-cpu-mpo recipe), score again")
    m.add_argument("--mpo-films", type=POSITIVE_INT, default=MpoSettings.films,
                   help=f"train films to sample candidates for (default {MpoSettings.films})")
    m.add_argument("--mpo-samples", type=number(int, 2, what="must be >= 2"), default=MpoSettings.num_samples,
                   help=f"candidates per film (default {MpoSettings.num_samples})")
    m.add_argument("--mpo-seed", type=SEED, default=MpoSettings.seed, help="sampling and MPO seed (default 0)")
    m.add_argument("--mpo-steps", type=POSITIVE_INT, default=MpoSettings.steps,
                   help=f"MPO steps (default {MpoSettings.steps})")
    m.add_argument("--mpo-lr", type=number(float, 0, low_open=True, what="must be > 0"),
                   default=MpoSettings.learning_rate, help=f"MPO learning rate (default {MpoSettings.learning_rate:g})")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DemoSettings, format_table, run_demo

    # absolute: the trained run's args.json names the model, and swift would take a relative name for a hub id
    model_dir = args.model_dir.expanduser().resolve() if args.model_dir else None
    mpo = MpoSettings(films=args.mpo_films, num_samples=args.mpo_samples, seed=args.mpo_seed, steps=args.mpo_steps,
                      learning_rate=args.mpo_lr) if args.mpo else None
    result = run_demo(DemoSettings(out_dir=args.out.resolve(), steps=args.steps, num_frames=args.frames,
                                   model_dir=model_dir, mpo=mpo))
    print(format_table(result))
    return 0
