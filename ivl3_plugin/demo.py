"""``ivl3 demo``: the whole job on the embedded default, end to end, on a laptop CPU.

tiny model -> convert the bundled videos -> score the untrained model -> ``swift sft``
(with ``--custom_register_path ivl3_plugin``) -> score the trained model -> report.
Every step is the same code a real fine-tune uses; only the model is tiny.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .default_plugins.datasets import DEMO_DATASET, demo_dataset_dir
from .default_plugins.templates import VIDEO_TEMPLATE
from .metric.predict import swift_executable


@dataclass
class DemoSettings:
    out_dir: Path
    steps: int = 150
    learning_rate: float = 3e-3
    batch_size: int = 4
    num_frames: int = 4
    max_new_tokens: int = 24
    model_dir: Optional[Path] = None


@dataclass
class DemoResult:
    before: Dict[str, float]
    after: Dict[str, float]
    losses: List[float]
    paths: Dict[str, str] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)


def offline_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def train_argv(model_dir: Path, out_dir: Path, s: DemoSettings) -> List[str]:
    """The exact ``swift sft`` command of the demo: our package, template and dataset by name."""
    return [
        swift_executable(), "sft",
        "--custom_register_path", "ivl3_plugin",
        "--model", str(model_dir),
        "--template", VIDEO_TEMPLATE,
        "--dataset", DEMO_DATASET,
        "--split_dataset_ratio", "0",
        "--tuner_type", "full",
        "--torch_dtype", "float32",
        "--max_steps", str(s.steps),
        "--learning_rate", str(s.learning_rate),
        "--lr_scheduler_type", "constant",
        "--warmup_ratio", "0",
        "--per_device_train_batch_size", str(s.batch_size),
        "--gradient_accumulation_steps", "1",
        "--gradient_checkpointing", "false",
        "--logging_steps", "10",
        "--save_strategy", "steps", "--save_steps", str(s.steps), "--save_only_model", "true",
        "--eval_strategy", "no",
        "--dataloader_num_workers", "0",
        "--report_to", "none",
        "--seed", "0",
        "--output_dir", str(out_dir),
        "--check_model", "false",
    ]


def _final_model_dir(train_out: Path) -> Path:
    """ms-swift saves the final weights in the run's last checkpoint."""
    ckpts = sorted(train_out.rglob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not ckpts:
        raise RuntimeError(f"swift sft wrote no checkpoint under {train_out}")
    return ckpts[-1]


def _losses(train_out: Path) -> List[float]:
    out = []
    for log in train_out.rglob("logging.jsonl"):
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if "loss" in row:
                out.append(float(row["loss"]))
    return out


def run_demo(s: DemoSettings, log=print) -> DemoResult:
    from .convert import convert
    from .metric.predict import predict
    from .metric.report import write_report
    from .metric.evaluation import evaluate_predictions
    from .tiny import ensure_tiny_model

    s.out_dir.mkdir(parents=True, exist_ok=True)
    t: Dict[str, float] = {}
    clock = time.time()
    model_dir = ensure_tiny_model(s.model_dir)
    t["model"] = time.time() - clock
    log(f"[1/5] tiny InternVL3 ready: {model_dir}")

    clock = time.time()
    from .demo_data import ANNOTATIONS

    dataset = convert(ANNOTATIONS, demo_dataset_dir(), num_frames=s.num_frames, val_fraction=0.2, prompt="concise")
    val = Path(dataset) / "swift" / "val.jsonl"
    t["convert"] = time.time() - clock
    log(f"[2/5] converted bundled videos -> {dataset}")

    clock = time.time()
    before_preds = predict(model_dir, val, s.out_dir / "predictions-before.jsonl", max_new_tokens=s.max_new_tokens)
    before = evaluate_predictions(before_preds)["corpus"]
    t["predict_before"] = time.time() - clock
    log(f"[3/5] untrained model scored on {val}")

    clock = time.time()
    train_out = s.out_dir / "train"
    argv = train_argv(model_dir, train_out, s)
    log("[4/5] training: " + " ".join(argv))
    with open(s.out_dir / "train.log", "w") as logf:
        proc = subprocess.run(argv, env=offline_env(), stdout=logf, stderr=subprocess.STDOUT, cwd=s.out_dir)
    if proc.returncode != 0:
        raise RuntimeError(f"swift sft failed (exit {proc.returncode}); see {s.out_dir / 'train.log'}")
    trained = _final_model_dir(train_out)
    t["train"] = time.time() - clock

    clock = time.time()
    after_preds = predict(trained, val, s.out_dir / "predictions-after.jsonl", max_new_tokens=s.max_new_tokens)
    after = evaluate_predictions(after_preds)["corpus"]
    report = write_report(after_preds, s.out_dir / "report.html", baseline=before_preds)
    t["predict_after"] = time.time() - clock
    log(f"[5/5] trained model scored; report: {report}")
    return DemoResult(before, after, _losses(train_out), {
        "model": str(model_dir), "dataset": str(dataset), "checkpoint": str(trained),
        "predictions_before": str(before_preds), "predictions_after": str(after_preds),
        "report": str(report), "train_log": str(s.out_dir / "train.log"),
    }, t)


def format_table(r: DemoResult) -> str:
    keys = [k for k in ("rougeL", "rouge1", "bleu4", "cider") if k in r.after]
    lines = [f"{'metric':<10}{'before':>10}{'after':>10}{'gain':>10}"]
    for k in keys:
        lines.append(f"{k:<10}{r.before.get(k, 0.0):>10.3f}{r.after[k]:>10.3f}{r.after[k] - r.before.get(k, 0.0):>+10.3f}")
    if r.losses:
        lines.append(f"training loss: {r.losses[0]:.3f} -> {r.losses[-1]:.3f} ({len(r.losses)} logged points)")
    lines.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in r.seconds.items()))
    lines += [f"{k}: {v}" for k, v in r.paths.items()]
    return "\n".join(lines)
