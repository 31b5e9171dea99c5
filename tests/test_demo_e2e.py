"""``ivl3 demo``, the README's main job, end to end with the shipped recipe's own settings.

What the demo promises is checked on what the model printed: the held-out videos' colour, shape
and direction read right (not just a higher ROUGE), and different videos described differently.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swift_cli import swift_env


@pytest.mark.e2e
def test_demo_trains_and_beats_the_untrained_model(tmp_path, tiny_model):
    ivl3 = Path(sys.executable).parent / "ivl3"
    out = tmp_path / "ivl3-demo"  # the default --out, as `make demo` runs it: a folder named like the dataset
    (tmp_path / "tiny").symlink_to(tiny_model, target_is_directory=True)  # a relative --model-dir, as users type it
    proc = subprocess.run([str(ivl3), "demo", "--model-dir", "tiny"],
                          cwd=tmp_path, env=swift_env(IVL3_HOME=tmp_path / "home"), capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = re.search(r"^rougeL\s+([\d.]+)\s+([\d.]+)", proc.stdout, re.M)
    assert row, proc.stdout
    before, after = map(float, row.groups())
    assert after >= before + 20, proc.stdout
    counts = {m.group(1): (int(m.group(2)), int(m.group(3)))
              for m in re.finditer(r"^(colour|shape|direction|all three|distinct)\s+(\d+)\s+(\d+)", proc.stdout, re.M)}
    assert counts["all three"][0] == 0 and counts["all three"][1] >= 7, proc.stdout  # of the 9 held-out videos
    assert counts["distinct"][1] >= 6, proc.stdout
    after_preds = [json.loads(l) for l in (out / "predictions-after.jsonl").read_text().splitlines()]
    assert len(after_preds) == 9 and len({p["prediction"] for p in after_preds}) == counts["distinct"][1]
    assert re.search(r"^seconds: model \d+, convert \d+, predict_before \d+, train \d+, predict_after \d+", proc.stdout, re.M)
    loss = re.search(r"training loss: ([\d.]+) -> ([\d.]+)", proc.stdout)
    assert loss and float(loss.group(2)) < float(loss.group(1)) / 2, proc.stdout
    report = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in report and "rougeL" in report
    assert report.count('<div class="label">attributes</div>') == 9 and "trained model on 9 held-out videos" in report
    args = json.loads(next((out / "train").rglob("args.json")).read_text())
    assert args["template"] == "ivl3_video" and args["dataset"] == ["ivl3-demo"]
    assert Path(args["model"]).is_absolute() and Path(args["model"]).resolve() == tiny_model.resolve()
