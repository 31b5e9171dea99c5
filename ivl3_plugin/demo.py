"""``ivl3 demo``: the whole job on the embedded default, end to end, on a laptop CPU.

tiny model -> convert the bundled videos -> score the untrained model -> ``swift sft``
(with ``--custom_register_path ivl3_plugin``) -> score the trained model -> report.
With ``--mpo``, one MPO round follows the SFT stage (:mod:`ivl3_plugin.demo_mpo`).
Every step is the same code a real fine-tune uses; only the model is tiny.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .default_plugins.datasets import DEMO_DATASET, demo_dataset_dir
from .demo_mpo import MpoResult, MpoSettings, reward_lines, run_mpo, verdict

DEMO_RECIPE = "tiny-cpu"  # recipes/tiny-cpu.yaml: the demo trains with the shipped recipe, through `ivl3 train`'s path


@dataclass
class DemoSettings:
    out_dir: Path
    steps: Optional[int] = None        # None: the recipe's max_steps
    num_frames: Optional[int] = None   # None: the recipe's `frames` metadata
    max_new_tokens: int = 24
    model_dir: Optional[Path] = None   # None: the recipe's model (ivl3-tiny, built on first use)
    mpo: Optional[MpoSettings] = None  # None: no MPO round after SFT


@dataclass
class DemoResult:
    before: Dict[str, float]
    after: Dict[str, float]
    losses: List[float]
    paths: Dict[str, str] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    attributes: Dict[str, Dict[str, int]] = field(default_factory=dict)  # "before"/"after" -> counts
    mpo: Optional[MpoResult] = None


def read_attributes(predictions_file) -> Tuple[Dict[str, int], Dict[str, str]]:
    """One read of a predictions file: how many held-out videos got colour, shape, direction (and all
    three) right, plus the distinct predictions; and per video id the line the report shows."""
    from .demo_data.attributes import ATTRIBUTES, count_right, judge
    from .metric.predictions import load_predictions

    pairs = [(p.id, p.prediction, p.references[0]) for p in load_predictions(predictions_file)]
    counts = {**count_right((p, r) for _, p, r in pairs), "distinct": len({p.strip() for _, p, _ in pairs})}
    lines = {}
    for vid, pred, ref in pairs:
        j = judge(pred, ref)
        lines[vid] = "  ".join(f"{a} {'right' if j[a] else 'WRONG'}" for a in ATTRIBUTES)
    return counts, lines


def offline_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def demo_recipe():
    """The shipped ``tiny-cpu`` recipe, found through the recipe registry like ``ivl3 train tiny-cpu``."""
    from .plugins import get_plugins
    from .recipe.launch import load

    return load(DEMO_RECIPE, {e.name: Path(e.obj) for e in get_plugins().recipes})


def train_launch(model_dir: Path, out_dir: Path, s: DemoSettings):
    """The demo's training run: the recipe with the demo's model, output folder and steps, for the swift host."""
    from .hosts.training import training_launch
    from .recipe.config import apply_overrides
    from .recipe.launch import Topology

    overrides = {"model": str(model_dir), "output_dir": str(out_dir), "dataset": [DEMO_DATASET]}
    if s.steps is not None:
        overrides.update(max_steps=s.steps, save_steps=s.steps)  # the final step is the checkpoint scored
    recipe = apply_overrides(demo_recipe(), overrides)
    return training_launch(recipe, overrides, Topology(), host="swift")


def run_folders(train_out: Path) -> set:
    """ms-swift's run folders under ``train_out``: every launch makes a new ``v<N>-<time>`` there."""
    return {p for p in Path(train_out).glob("v*-*") if p.is_dir()}


def launched_run(train_out: Path, before: set) -> Path:
    """The run folder that the launch made, given ``run_folders`` from before it.  Why: a demo run again into
    the same output folder finds its earlier runs beside the new one, each with a checkpoint of the same step
    and a loss log; only this launch's are its result."""
    made = sorted(run_folders(train_out) - before)
    if len(made) != 1:
        raise RuntimeError(f"expected the launch to make one run folder under {train_out}, found "
                           f"{', '.join(p.name for p in made) or 'none'}")
    return made[0]


def logged_rows(train_out: Path) -> List[dict]:
    """The rows ms-swift logged per step (``logging.jsonl`` of the run), in file order."""
    return [json.loads(line) for log in sorted(Path(train_out).rglob("logging.jsonl"))
            for line in log.read_text().splitlines() if line.strip()]


def _losses(train_out: Path) -> List[float]:
    return [float(row["loss"]) for row in logged_rows(train_out) if "loss" in row]


def run_demo(s: DemoSettings, log=print) -> DemoResult:
    from .checkpoint.export import find_checkpoint
    from .convert import convert
    from .hosts import get_host
    from .hosts.protocol import PredictRequest
    from .hosts.training import launch_environment
    from .metric.evaluation import evaluate_predictions
    from .metric.report import write_report
    from .tiny import ensure_tiny_model

    host = get_host("swift")
    num_frames = s.num_frames or int(demo_recipe().meta.get("frames", 4))

    def predict(model, dataset, out):
        return host.predict(PredictRequest(model, dataset, out, max_new_tokens=s.max_new_tokens))

    s.out_dir.mkdir(parents=True, exist_ok=True)
    t: Dict[str, float] = {}
    total, done = (9 if s.mpo else 5), iter(range(1, 10))

    def step(text: str) -> str:
        return f"[{next(done)}/{total}] {text}"

    clock = time.time()
    model_dir = ensure_tiny_model(s.model_dir).resolve()
    t["model"] = time.time() - clock
    log(step(f"tiny InternVL3 ready: {model_dir}"))

    clock = time.time()
    from .demo_data import ANNOTATIONS

    dataset = convert(ANNOTATIONS, demo_dataset_dir(), num_frames=num_frames, val_fraction=0.2, prompt="concise")
    val = Path(dataset) / "swift" / "val.jsonl"
    t["convert"] = time.time() - clock
    log(step(f"converted bundled videos -> {dataset}"))

    clock = time.time()
    before_preds = predict(model_dir, val, s.out_dir / "predictions-before.jsonl")
    before = evaluate_predictions(before_preds)["corpus"]
    t["predict_before"] = time.time() - clock
    log(step(f"untrained model scored on {val}"))

    clock = time.time()
    train_out = s.out_dir / "train"
    launch = train_launch(model_dir, train_out, s)
    earlier = run_folders(train_out)
    log(step(f"training ({DEMO_RECIPE} recipe): {launch.render()}"))
    with open(s.out_dir / "train.log", "w") as logf:
        proc = subprocess.run(launch.argv, env=launch_environment(launch, offline_env()), stdout=logf,
                              stderr=subprocess.STDOUT, cwd=s.out_dir, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"swift sft failed (exit {proc.returncode}); see {s.out_dir / 'train.log'}")
    run = launched_run(train_out, earlier)
    trained = find_checkpoint(run)  # ms-swift saves the final weights in the run's last checkpoint
    t["train"] = time.time() - clock

    clock = time.time()
    after_preds = predict(trained, val, s.out_dir / "predictions-after.jsonl")
    after = evaluate_predictions(after_preds)["corpus"]
    (before_counts, before_lines), (after_counts, after_lines) = map(read_attributes, (before_preds, after_preds))
    attributes = {"before": before_counts, "after": after_counts}
    extras = {vid: {"attributes": line, "baseline attributes": before_lines.get(vid, "")}
              for vid, line in after_lines.items()}
    notes = [attribute_summary(attributes["after"], "trained"), attribute_summary(attributes["before"], "untrained")]
    t["predict_after"] = time.time() - clock
    log(step("trained model scored"))

    mpo = None
    if s.mpo:
        mpo = run_mpo(s.mpo, trained, Path(dataset) / "swift" / "train.jsonl", val, s.out_dir / "mpo",
                      s.max_new_tokens, offline_env(), log, step, sft_predictions=after_preds)
        t.update(mpo.seconds)
        attributes["mpo"] = mpo.attributes
        for vid, line in mpo.lines.items():  # the report's cards gain the after-MPO prediction and its attributes
            extras.setdefault(vid, {}).update({"after MPO": mpo.predictions.get(vid, ""), "after MPO attributes": line})
        notes[1:1] = [attribute_summary(mpo.attributes, "after MPO the"),
                      verdict(attributes["after"], mpo.attributes, mpo.changed), *reward_lines(mpo.rewards)]
    report = write_report(after_preds, s.out_dir / "report.html", baseline=before_preds, item_extras=extras,
                          notes=notes)
    log(f"report: {report}")
    return DemoResult(before, after, _losses(run), {
        "model": str(model_dir), "dataset": str(dataset), "checkpoint": str(trained),
        "predictions_before": str(before_preds), "predictions_after": str(after_preds),
        "report": str(report), "train_log": str(s.out_dir / "train.log"), **(mpo.paths if mpo else {}),
    }, t, attributes, mpo)


def attribute_summary(counts: Dict[str, int], who: str) -> str:
    n = counts["videos"]
    return (f"{who} model on {n} held-out videos: colour right {counts['colour']}/{n}, shape {counts['shape']}/{n}, "
            f"direction {counts['direction']}/{n}, all three {counts['all']}/{n}; {counts['distinct']} distinct predictions")


def format_table(r: DemoResult) -> str:
    """The demo's summary: before/after SFT (and after MPO with ``--mpo``: one more column)."""
    keys = [k for k in ("rougeL", "rouge1", "bleu4", "cider") if k in r.after]
    m = r.mpo
    lines = [f"{'metric':<10}{'before':>10}{'after':>10}{'gain':>10}" + (f"{'after MPO':>11}" if m else "")]
    for k in keys:
        lines.append(f"{k:<10}{r.before.get(k, 0.0):>10.3f}{r.after[k]:>10.3f}{r.after[k] - r.before.get(k, 0.0):>+10.3f}"
                     + (f"{m.after.get(k, 0.0):>11.3f}" if m else ""))
    if r.attributes:
        b, a = r.attributes["before"], r.attributes["after"]
        n = a["videos"]
        lines.append(f"held-out videos described right, of {n} (films training never showed):"
                     + ("  before / after SFT / after MPO" if m else ""))
        for k, name in (("colour", "colour"), ("shape", "shape"), ("direction", "direction"), ("all", "all three"),
                        ("distinct", "distinct")):
            lines.append(f"{name:<10}{b[k]:>10}{a[k]:>10}" + (f"{m.attributes[k]:>10}" if m else "")
                         + ("   (different predictions)" if k == "distinct" else ""))
    if r.losses:
        lines.append(f"training loss: {r.losses[0]:.3f} -> {r.losses[-1]:.3f} ({len(r.losses)} logged points)")
    if m:
        lines.append(f"MPO pairs: {m.pairs} from {m.sampled} sampled candidates")
        lines += reward_lines(m.rewards)
        lines.append(verdict(r.attributes["after"], m.attributes, m.changed))
    lines.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in r.seconds.items()))
    lines += [f"{k}: {v}" for k, v in r.paths.items()]
    return "\n".join(lines)
