"""``ivl3 demo --mpo``, the README's main job, end to end with the shipped recipe's own settings.

What the demo promises is checked on what the model printed: the held-out videos' colour, shape
and direction read right (not just a higher ROUGE), and different videos described differently.
One run covers both stages (no second SFT run in CI): after SFT, the MPO round (issue #19) must have
made pairs from the SFT model's own samples, raised the reward margin, and left the held-out films
at least as right as SFT did, still described in real, different sentences.
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
def test_demo_trains_beats_the_untrained_model_and_mpo_keeps_it(tmp_path, tiny_model):
    ivl3 = Path(sys.executable).parent / "ivl3"
    out = tmp_path / "ivl3-demo"  # the default --out, as `make demo` runs it: a folder named like the dataset
    (tmp_path / "tiny").symlink_to(tiny_model, target_is_directory=True)  # a relative --model-dir, as users type it
    proc = subprocess.run([str(ivl3), "demo", "--model-dir", "tiny", "--mpo"],
                          cwd=tmp_path, env=swift_env(IVL3_HOME=tmp_path / "home"), capture_output=True, text=True,
                          timeout=2700, check=False)
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
    assert re.search(r"^seconds: model \d+, convert \d+, predict_before \d+, train \d+, predict_after \d+, "
                     r"mpo_sample \d+, mpo_pairs \d+, mpo_train \d+, predict_mpo \d+$", proc.stdout, re.M)
    loss = re.search(r"training loss: ([\d.]+) -> ([\d.]+)", proc.stdout)
    assert loss and float(loss.group(2)) < float(loss.group(1)) / 2, proc.stdout
    report = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in report and "rougeL" in report
    assert report.count('<div class="label">attributes</div>') == 9 and "trained model on 9 held-out videos" in report
    args = json.loads(next((out / "train").rglob("args.json")).read_text())
    assert args["template"] == "ivl3_video" and args["dataset"] == ["ivl3-demo"]
    assert Path(args["model"]).is_absolute() and Path(args["model"]).resolve() == tiny_model.resolve()

    # --- the MPO round ---
    # pairs were made from the SFT model's own samples: the reference chosen, a sampled candidate rejected,
    # every frame of the film in the row
    pairs = [json.loads(l) for l in (out / "mpo" / "pairs" / "swift" / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) > 0, proc.stdout
    cands = {c["id"]: c["candidates"] for c in map(json.loads, (out / "mpo" / "candidates.jsonl").read_text().splitlines())}
    subset = {r["id"]: r for r in map(json.loads, (out / "mpo" / "train-subset.jsonl").read_text().splitlines())}
    for pair in pairs:
        assert pair["rejected_response"] in cands[pair["id"]] and len(cands[pair["id"]]) == 4
        assert pair["messages"][-1]["content"] == subset[pair["id"]]["messages"][-1]["content"] != pair["rejected_response"]
        assert pair["videos"] == subset[pair["id"]]["videos"] and len(pair["videos"][0]) == 2
        assert all(Path(f).is_file() for f in pair["videos"][0])
    assert re.search(rf"^MPO pairs: {len(pairs)} from {4 * len(subset)} sampled candidates$", proc.stdout, re.M)
    # swift rlhf logged the reward margin per step, and it rose
    margins = [r["rewards/margins"] for r in map(json.loads, next((out / "mpo" / "train").rglob("logging.jsonl"))
               .read_text().splitlines()) if "rewards/margins" in r]
    # one step's margin is one batch of 4 pairs: the rise is read from the first and last quarter's means
    q = len(margins) // 4
    assert len(margins) >= 10 and sum(margins[-q:]) / q > sum(margins[:q]) / q, margins
    shown = re.search(r"^MPO reward margin: (-?[\d.]+) -> (-?[\d.]+)", proc.stdout, re.M)
    assert shown and float(shown.group(2)) == pytest.approx(margins[-1], abs=1e-3), proc.stdout
    means = re.search(r"^MPO reward margin, mean of the first / last quarter of the steps: (-?[\d.]+) -> (-?[\d.]+)",
                      proc.stdout, re.M)
    assert means and float(means.group(2)) > float(means.group(1)), proc.stdout
    assert re.search(r"^MPO reward accuracy: [\d.]+ -> [\d.]+", proc.stdout, re.M)
    mpo_args = json.loads(next((out / "mpo" / "train").rglob("args.json")).read_text())
    assert mpo_args["rlhf_type"] == "dpo" and mpo_args["tuner_type"] == "lora" and mpo_args["ref_model"] is None
    sft_checkpoint = next((out / "train").rglob("checkpoint-*"))
    assert Path(mpo_args["model"]).resolve() == sft_checkpoint.resolve()  # LoRA on the SFT model, not the random one
    # held-out after MPO: no worse than after SFT, read from what the model printed
    counts3 = {m.group(1): tuple(map(int, m.groups()[1:])) for m in re.finditer(
        r"^(colour|shape|direction|all three|distinct)\s+(\d+)\s+(\d+)\s+(\d+)", proc.stdout, re.M)}
    assert counts3["all three"][2] >= counts3["all three"][1], proc.stdout
    mpo_preds = [json.loads(l) for l in (out / "predictions-mpo.jsonl").read_text().splitlines()]
    from ivl3_plugin.demo_data.attributes import count_right
    recount = count_right((p["prediction"], p["reference"]) for p in mpo_preds)
    assert len(mpo_preds) == 9 and recount["all"] == counts3["all three"][2]
    # real sentences, different per film: "A <colour> <shape> moves <direction>."
    distinct = {p["prediction"].strip() for p in mpo_preds}
    assert len(distinct) == counts3["distinct"][2] >= 6, mpo_preds
    sentence = re.compile(r"A (red|green|blue|yellow) (circle|square|triangle) moves (right|left|up|down)\.")
    formed = [sum(bool(sentence.fullmatch(p["prediction"].strip())) for p in preds) for preds in (after_preds, mpo_preds)]
    assert formed[1] >= max(formed[0], 6), (formed, mpo_preds)  # no stutter or word salad where SFT had a sentence
    assert re.search(r"^MPO (left|improved)", proc.stdout, re.M), proc.stdout
    assert "after MPO the model on 9 held-out videos" in report and report.count('<div class="label">after MPO</div>') == 9
