"""Shared fixtures: the tiny model, the bundled videos, and a runner for the real ms-swift CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny InternVL3, built once per session (or reused from $IVL3_TEST_CACHE)."""
    from ivl3_plugin.tiny import build_tiny_model
    from ivl3_plugin.tiny.model import demo_text

    cache = os.environ.get("IVL3_TEST_CACHE")
    out = Path(cache) / "tiny-internvl3" if cache else tmp_path_factory.mktemp("model") / "tiny-internvl3"
    return build_tiny_model(out, extra_text=demo_text())


@pytest.fixture(scope="session")
def demo_annotations() -> Path:
    from ivl3_plugin.demo_data import ANNOTATIONS

    return ANNOTATIONS


@pytest.fixture(scope="session")
def demo_videos(demo_annotations) -> list:
    """(id, absolute mp4 path, summary) for every bundled video."""
    rows = [json.loads(l) for l in demo_annotations.read_text().splitlines() if l.strip()]
    return [(r["id"], demo_annotations.parent / r["video"], r["summary"]) for r in rows]


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


def logged_losses(output_dir: Path) -> list:
    """Training losses from the logging.jsonl ms-swift writes under output_dir."""
    losses = []
    for log in sorted(Path(output_dir).rglob("logging.jsonl")):
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if "loss" in row:
                losses.append(float(row["loss"]))
    return losses
