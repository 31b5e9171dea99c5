"""The README's "Use it on your data" commands, run as written from an empty folder, on the tiny model.

The block is read from README.md itself, so the README cannot drift from what works. Three documented
substitutions make it run on a CPU without downloads: the `pip install` line is skipped (this is the
installed environment), `huggingface-cli download …` becomes the tiny model in OpenGVLab's remote-code
format at the same folder, and the 8B recipe becomes its CPU twin (`tiny-cpu-lora`; `tiny-cpu` for the
full fine-tune) trained for 3 steps. Every other line runs verbatim through bash (globs and relative
paths included).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swift_cli import swift_env

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def readme_block() -> list:
    text = (REPO / "README.md").read_text()
    section = text.split("## Use it on your data", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def _prepare(folder: Path, demo_videos) -> None:
    (folder / "videos").mkdir(parents=True)
    rows = ["id,video,summary"]
    for vid, path, summary in demo_videos:  # all 48 bundled clips: a val split of several videos
        shutil.copyfile(path, folder / "videos" / path.name)
        rows.append(f'{vid},{path.name},"{summary}"')
    (folder / "annotations.csv").write_text("\n".join(rows) + "\n")


def _run(line: str, folder: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "set -euo pipefail; " + line], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=1800)


def _flow(folder: Path, recipe: str, env: dict) -> dict:
    done = {}
    for line in readme_block():
        words = line.split()
        if words[:2] == ["pip", "install"]:
            continue  # the environment under test is the installed package
        if words[0] == "huggingface-cli":
            target = folder / words[words.index("--local-dir") + 1]
            code = ("import sys; from ivl3_plugin.tiny.remote import build_tiny_remote_model; "
                    "from ivl3_plugin.tiny.model import demo_text; "
                    "build_tiny_remote_model(sys.argv[1], post_init=False, extra_text=demo_text())")
            proc = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True, text=True)
        else:
            line = line.split("  #")[0].replace("internvl3-8b-lora", recipe)
            if words[:2] == ["ivl3", "train"]:
                line += " max_steps=3 save_steps=3"  # a CPU smoke run of the recipe
            proc = _run(line, folder, env)
        assert proc.returncode == 0, f"README line failed: {line}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        done[words[0] if words[0] != "ivl3" else f"ivl3 {words[1]}"] = proc
    return done


@pytest.mark.parametrize("recipe", ["tiny-cpu-lora", "tiny-cpu"])
def test_readme_use_it_on_your_data_runs_as_written(recipe, tmp_path, demo_videos):
    folder = tmp_path / "work"
    _prepare(folder, demo_videos)
    env = swift_env(IVL3_HOME=tmp_path / "home", HF_MODULES_CACHE=tmp_path / "hf-modules")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    done = _flow(folder, recipe, env)
    assert {"ivl3 checkpoint", "ivl3 convert", "ivl3 plan", "ivl3 train", "ivl3 predict", "ivl3 report",
            "ivl3 export"} <= set(done)
    assert "internvl3-8b-lora" in done["ivl3 plan"].stdout  # the plan names the recipe the next line trains
    val = (folder / "data" / "my-videos" / "swift" / "val.jsonl").read_text().splitlines()
    preds = [json.loads(l) for l in (folder / "preds.jsonl").read_text().splitlines()]
    assert len(preds) == len(val) > 0 and all(isinstance(p["prediction"], str) for p in preds)
    args = json.loads(next((folder / "output" / recipe).rglob("args.json")).read_text())
    assert Path(args["model"]).is_absolute() and Path(args["model"]) == folder / "models" / "InternVL3-8B-hf"
    assert (folder / "report.html").stat().st_size > 0
    exported = json.loads((folder / "models" / "my-summariser" / "config.json").read_text())
    assert exported["architectures"] == ["InternVLForConditionalGeneration"]


def readme_mpo_block() -> list:
    """The "Then preference tuning (MPO)" block of the README (after the block above)."""
    section = (REPO / "README.md").read_text().split("### Then preference tuning (MPO)", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0] for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_preference_tuning_runs_as_written(tmp_path, tiny_model, demo_videos):
    """The MPO block from the model the block above exports (here: the tiny model at that folder) and the
    converted train split (8 films, 2 frames). Substitutions: `internvl3-8b-mpo` becomes `tiny-cpu-mpo`
    trained 2 steps, and `ivl3 pairs` samples 2 summaries of 8 tokens (CPU time); the rest runs verbatim."""
    from ivl3_plugin.convert import convert

    folder = tmp_path / "work"
    shutil.copytree(tiny_model, folder / "models" / "my-summariser")
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps({"id": i, "video": str(p), "summary": s}) + "\n" for i, p, s in demo_videos[:8]))
    convert(ann, folder / "data" / "my-videos", num_frames=2, val_fraction=0.0)
    env = swift_env(IVL3_HOME=tmp_path / "home", HF_MODULES_CACHE=tmp_path / "hf-modules")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    lines = readme_mpo_block()
    assert [" ".join(x.split()[:2]) for x in lines] == ["ivl3 pairs", "ivl3 plan", "ivl3 train"]
    out = {}
    for line in lines:
        words = line.split()
        if words[:2] == ["ivl3", "pairs"]:
            line += " --num-samples 2 --max-new-tokens 8"
        if words[:2] == ["ivl3", "train"]:
            line = line.replace("internvl3-8b-mpo", "tiny-cpu-mpo") + " max_steps=2 save_steps=2"
        proc = _run(line, folder, env)
        assert proc.returncode == 0, f"README line failed: {line}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        out[words[1]] = proc
    pairs = [json.loads(x) for x in (folder / "data" / "my-pairs" / "swift" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(len(p["videos"][0]) == 2 and p["rejected_response"] for p in pairs)
    assert "mpo" in out["plan"].stdout.lower()
    logged = [json.loads(x) for x in next((folder / "output" / "tiny-cpu-mpo").rglob("logging.jsonl")).read_text()
              .splitlines()]
    assert any("rewards/margins" in r for r in logged)  # it ran swift rlhf, not swift sft
