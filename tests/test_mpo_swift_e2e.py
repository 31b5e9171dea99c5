"""MPO through the real ``swift rlhf`` CLI on the tiny model: LoRA and full fine-tuning, each on the -hf format
(LoRA via ``ivl3 train tiny-cpu-mpo``) and the remote-code format (about 3 minutes for the four on a 2-core CPU).
From ms-swift's own logs: the loss falls, the reward margin rises, the reference model is what it should be, and
the encoded pairs hold every frame with labels on the answers only."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytest.importorskip("swift")

from swift_cli import convert_demo_subset, run_swift, swift_env  # noqa: E402

NUM_FRAMES = 2
PAIRS = 6  # one batch of 6 pairs: every step sees the same pairs, so the trends are smooth
WRONG = "A blue square moves up."  # no demo video shows it: a wrong summary for every clip
MPO = ["--rlhf_type", "dpo", "--loss_type", "sigmoid", "bco_pair", "--loss_weights", "0.8", "0.2",
       "--rpo_alpha", "1.0", "--beta", "0.1"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, demo_annotations):
    """Converted rows as preference pairs: system + user (<video>) + assistant = the reference summary (chosen),
    rejected_response = a wrong summary, videos = the converted frames."""
    from ivl3_plugin.template.spec import INTERNVL3_SYSTEM

    tmp = tmp_path_factory.mktemp("pairs")
    train = convert_demo_subset(demo_annotations, tmp, count=PAIRS, num_frames=NUM_FRAMES)
    rows = [json.loads(line) for line in train.read_text().splitlines() if line.strip()]
    pairs = tmp / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({
        "messages": [{"role": "system", "content": INTERNVL3_SYSTEM}, *r["messages"]],
        "rejected_response": WRONG, "videos": r["videos"]}) + "\n" for r in rows))
    return pairs


@pytest.fixture(scope="module")
def remote_model(tmp_path_factory):
    from ivl3_plugin.tiny.model import demo_text
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    return build_tiny_remote_model(tmp_path_factory.mktemp("remote") / "InternVL3-tiny", extra_text=demo_text())


def logged(output_dir):
    rows = []
    for log in sorted(output_dir.rglob("logging.jsonl")):
        rows += [r for r in map(json.loads, log.read_text().splitlines()) if "rewards/margins" in r]
    return rows


def run_args(output_dir):
    return json.loads(next(output_dir.rglob("args.json")).read_text())


def check_run(proc, out, model, label):
    """What every MPO run must show; prints the loss and margin it went through, labelled."""
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    rows = logged(out)
    assert len(rows) >= 5, rows
    first, last = rows[0], rows[-1]
    # it learns the preference: loss down, margin up (and positive), chosen over rejected for every pair
    assert last["loss"] < first["loss"] - 0.05, (first, last)
    assert last["rewards/margins"] > first["rewards/margins"] + 0.01 and last["rewards/margins"] > 0, (first, last)
    assert last["rewards/accuracies"] == 1.0
    assert "nll_loss" in last  # rpo_alpha 1: the chosen answer's NLL is part of the loss
    # the reference does not move with the policy (else every reward would stay 0)
    assert abs(last["rewards/chosen"]) > 1e-3 or abs(last["rewards/rejected"]) > 1e-3
    # every frame of the pair, read once and shared: NUM_FRAMES tiles, 256 image tokens each, on both sides
    assert (f"first preference pair: {NUM_FRAMES} pixel rows (tiles) read once for both sides; image tokens "
            f"chosen {NUM_FRAMES * 256}, rejected {NUM_FRAMES * 256}") in log
    for side, answer in (("CHOSEN", None), ("REJECTED", WRONG)):
        shown = log.split(f"[{side}_INPUT] ", 1)[1].split(f"[{side}_LABELS_IDS]", 1)[0]
        assert len(re.findall(r"Frame\d+: <img>\[\d+ \* 256\]</img>", shown)) == NUM_FRAMES, shown
        labels = log.split(f"[{side}_LABELS] ", 1)[1].splitlines()[0]
        # labels: everything before the answer is -100; the answer and its end token are trained
        assert re.fullmatch(r"\[-100 \* \d+\](.+)<\|im_end\|>", labels), labels
        if answer:
            assert labels.endswith(answer + "<|im_end|>")
    print(f"\n{label}: loss {first['loss']:.4f} -> {last['loss']:.4f}, margin {first['rewards/margins']:.4f} -> "
          f"{last['rewards/margins']:.4f}")


def common(out, steps=6):
    return ["--split_dataset_ratio", "0", "--torch_dtype", "float32", "--max_steps", str(steps),
            "--per_device_train_batch_size", str(PAIRS), "--gradient_accumulation_steps", "1", "--logging_steps", "1",
            "--gradient_checkpointing", "false", "--save_strategy", "no", "--eval_strategy", "no",
            "--dataloader_num_workers", "0", "--report_to", "none", "--seed", "0", "--output_dir", out]


@pytest.mark.e2e
def test_lora_mpo_recipe_through_ivl3_train(tiny_model, pairs_file, tmp_path):
    """``ivl3 train tiny-cpu-mpo`` launches ``swift rlhf``; LoRA's reference is the base model (no ref_model)."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "train", "tiny-cpu-mpo", f"model={tiny_model}",
                           f"dataset=[{pairs_file}]", f"output_dir={out}", "max_steps=6",
                           f"per_device_train_batch_size={PAIRS}", "gradient_accumulation_steps=1",
                           "save_strategy=no"], cwd=tmp_path, env=swift_env(IVL3_HOME=tmp_path / "home"),
                          capture_output=True, text=True, timeout=600, check=False)
    assert " rlhf " in proc.stderr.split("ivl3 train: ", 1)[1].splitlines()[0]
    check_run(proc, out, tiny_model, "LoRA -hf")
    args = run_args(out)
    assert args["ref_model"] is None and args["tuner_type"] == "lora"  # peft's disable_adapter() is the reference
    assert args["loss_type"] == ["sigmoid", "bco_pair"] and args["loss_weights"] == [0.8, 0.2]


@pytest.mark.e2e
def test_lora_mpo_on_the_remote_code_format(remote_model, pairs_file, tmp_path):
    out = tmp_path / "out"
    proc = run_swift("rlhf", [*MPO, "--custom_register_path", "ivl3_plugin", "--model", remote_model, "--template",
                              "ivl3_video", "--dataset", pairs_file, "--tuner_type", "lora", "--learning_rate", "1e-3",
                              *common(out)], cwd=tmp_path, env=swift_env(HF_MODULES_CACHE=tmp_path / "hf-modules"))
    check_run(proc, out, remote_model, "LoRA remote")
    assert run_args(out)["ref_model"] is None


@pytest.mark.e2e
def test_full_mpo_keeps_a_reference_copy(tiny_model, pairs_file, tmp_path):
    out = tmp_path / "out"
    proc = run_swift("rlhf", [*MPO, "--custom_register_path", "ivl3_plugin", "--model", tiny_model, "--template",
                              "ivl3_video", "--dataset", pairs_file, "--tuner_type", "full", "--freeze_vit", "true",
                              "--learning_rate", "1e-4", *common(out)], cwd=tmp_path, env=swift_env())
    check_run(proc, out, tiny_model, "full -hf")
    assert run_args(out)["ref_model"] == str(tiny_model)  # ms-swift loads a second, frozen copy as the reference


@pytest.mark.e2e
def test_full_mpo_on_the_remote_code_format(remote_model, pairs_file, tmp_path):
    """The reference copy of a remote-code checkpoint loads through the same repaired loader as the policy."""
    out = tmp_path / "out"
    proc = run_swift("rlhf", [*MPO, "--custom_register_path", "ivl3_plugin", "--model", remote_model, "--template",
                              "ivl3_video", "--dataset", pairs_file, "--tuner_type", "full", "--freeze_vit", "true",
                              "--learning_rate", "1e-4", *common(out)], cwd=tmp_path,
                     env=swift_env(HF_MODULES_CACHE=tmp_path / "hf-modules"))
    check_run(proc, out, remote_model, "full remote")
    assert run_args(out)["ref_model"] == str(remote_model)


@pytest.mark.e2e
def test_mpo_skipping_padding_trains_the_same(tiny_model, pairs_file, tmp_path):
    """A preference batch always pads (chosen and rejected differ in length), so MPO recipes list
    ``ivl3_skip_padding``: the policy's and the reference copy's attention skip padding, and the losses and
    rewards are the masked run's."""
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    uneven = tmp_path / "uneven.jsonl"  # rejected answers of 0-2 extra sentences: the rows of a batch differ
    uneven.write_text("".join(json.dumps({**r, "rejected_response": WRONG + " It stops." * (i % 3)}) + "\n"
                              for i, r in enumerate(rows)))
    runs = {}
    for name, extra in (("masked", []), ("skipping", ["--callbacks", "ivl3_skip_padding"])):
        out = tmp_path / name
        proc = run_swift("rlhf", [*MPO, "--custom_register_path", "ivl3_plugin", "--model", tiny_model, "--template",
                                  "ivl3_video", "--dataset", uneven, "--tuner_type", "full", "--freeze_vit", "true",
                                  "--learning_rate", "1e-4", *extra, *common(out, steps=3)], cwd=tmp_path, env=swift_env())
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-6000:]
        runs[name] = (logged(out), log)
    (masked, masked_log), (skipping, skipping_log) = runs["masked"], runs["skipping"]
    assert "attention skips padding" not in masked_log
    assert "ivl3_skip_padding: " in skipping_log and "reference model" in skipping_log
    assert skipping_log.count("attention skips padding") == 2, skipping_log[-4000:]  # the policy and the reference
    assert len(masked) == len(skipping) == 3
    for a, b in zip(masked, skipping):
        for key in ("loss", "rewards/chosen", "rewards/rejected", "nll_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (key, a, b)
