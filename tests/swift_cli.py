"""Helpers for tests that drive the real ms-swift CLI (a module, not conftest, so its name is unique)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def swift_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


TRAINING_COMMANDS = {"sft", "pt", "rlhf"}


def run_swift(subcommand: str, args: list, cwd: Path, env: dict | None = None, timeout: int = 900):
    """Run the real ``swift`` console script as a subprocess (argv list, never a shell string)."""
    exe = shutil.which("swift", path=str(VENV_BIN)) or shutil.which("swift")
    assert exe, "the swift CLI is not installed (pip install 'ivl3-plugin[swift]')"
    argv = [exe, subcommand, *[str(a) for a in args]]
    if subcommand in TRAINING_COMMANDS and "--check_model" not in argv:
        argv += ["--check_model", "false"]  # skips ~7 s of hub retries; `swift infer` has no such flag
    proc = subprocess.run(argv, cwd=cwd, env=env or swift_env(), capture_output=True, text=True, timeout=timeout)
    return proc


def logged_losses(output_dir: Path, key: str = "loss") -> list:
    """Training losses (or another logged value, ``key``) from the logging.jsonl ms-swift writes under output_dir."""
    losses = []
    for log in sorted(Path(output_dir).rglob("logging.jsonl")):
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if key in row:
                losses.append(float(row[key]))
    return losses


def convert_demo_subset(demo_annotations: Path, tmp: Path, count: int, num_frames: int) -> Path:
    """The first ``count`` bundled videos converted by the real converter into one split; its swift JSONL."""
    from ivl3_plugin.convert import convert

    rows = [json.loads(line) for line in demo_annotations.read_text().splitlines() if line.strip()][:count]
    for row in rows:
        row["video"] = str((demo_annotations.parent / row["video"]).resolve())
        row.pop("split", None)  # one split: the demo's held-out marks do not apply
    ann = tmp / "annotations.jsonl"
    ann.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = convert(ann, tmp / "converted", num_frames=num_frames, val_fraction=0.0)
    return out / "swift" / "train.jsonl"
