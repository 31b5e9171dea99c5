"""The model reads its frames, in both checkpoint formats, through ms-swift's ``ivl3_video`` template.

A short real ``swift sft`` run (projector and LLM trained, as the demo recipe does) on four bundled
videos that differ in colour and direction; then, on each sample encoded by our template: the loss with
its own frames is clearly below the loss with another video's frames, and the greedy prediction
changes when the frames change. The same checks run on the trained checkpoint rewritten in the
remote-code format (``ivl3 checkpoint to-remote``). A change that drops, zeroes or scrambles the
image features makes both fail. The LLaMA-Factory template's twin is ``tests/lf_host/test_llamafactory_vision.py``.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

pytest.importorskip("swift")

from swift_cli import logged_losses, run_swift, swift_env  # noqa: E402
from vision_films import write_pick_annotations  # noqa: E402

STEPS = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, demo_annotations):
    from ivl3_plugin.convert import convert

    root = tmp_path_factory.mktemp("vision")
    ann = write_pick_annotations(demo_annotations, root / "ann.jsonl")
    data = convert(ann, root / "data", num_frames=2, val_fraction=0.0) / "swift" / "train.jsonl"
    out = root / "out"
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin", "--model", tiny_model, "--template", "ivl3_video",
        "--dataset", data, "--split_dataset_ratio", "0", "--tuner_type", "full", "--torch_dtype", "float32",
        "--freeze_aligner", "false", "--max_steps", STEPS, "--learning_rate", "3e-3", "--lr_scheduler_type", "constant",
        "--warmup_ratio", "0", "--per_device_train_batch_size", "4", "--logging_steps", "5",
        "--gradient_checkpointing", "false", "--save_strategy", "steps", "--save_steps", STEPS, "--save_only_model",
        "true", "--eval_strategy", "no", "--dataloader_num_workers", "0", "--report_to", "none", "--seed", "0",
        "--output_dir", out,
    ], cwd=root, env=swift_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert logged_losses(out)[-1] < 0.5 * logged_losses(out)[0]
    hf = next(out.rglob(f"checkpoint-{STEPS}"))
    from ivl3_plugin.tiny.remote import REMOTE_CODE_DIR

    remote = root / "remote"  # the same weights in OpenGVLab's format (our remote-code fixture's modeling files)
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "checkpoint", "to-remote", str(hf), str(remote),
                           "--code-from", str(REMOTE_CODE_DIR)],
                          capture_output=True, text=True, timeout=600, env=swift_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    samples = [json.loads(l) for l in data.read_text().splitlines() if l.strip()]
    return hf, remote, samples


@pytest.fixture(scope="module")
def encoded(trained):
    """Our template's training encoding of each sample: (input_ids, labels, pixel_values)."""
    import torch
    from swift import get_processor, get_template

    from ivl3_plugin.hosts.swift.install import install

    install()
    hf, _, samples = trained
    template = get_template(get_processor(str(hf)), template_type="ivl3_video")
    template.set_mode("train")
    out = []
    for row in samples:
        e = template.encode(copy.deepcopy(row))
        out.append((torch.tensor([e["input_ids"]]), torch.tensor([e["labels"]]), e["pixel_values"].float()))
    return out


def _check_frames_matter(forward, generate, encoded):
    """Right frames: lower loss on every sample (and by far on average); other frames: other predictions."""
    import torch

    n = len(encoded)
    right, wrong, changed = [], [], 0
    with torch.no_grad():
        for i, (ids, labels, pixels) in enumerate(encoded):
            other = encoded[(i + 1) % n][2]
            right.append(forward(ids, labels, pixels))
            wrong.append(forward(ids, labels, other))
            prompt = ids[:, : int((labels[0] != -100).nonzero()[0])]
            changed += generate(prompt, pixels) != generate(prompt, other)
    assert all(r < w for r, w in zip(right, wrong)), (right, wrong)
    assert sum(wrong) > 1.5 * sum(right), (right, wrong)  # the answer tokens that name nothing dilute the gap
    assert changed >= n - 1, f"only {changed}/{n} predictions changed with another video's frames"
    # and a zeroed image is not as good as the real one either
    ids, labels, pixels = encoded[0]
    assert forward(ids, labels, torch.zeros_like(pixels)) > right[0]


@pytest.mark.e2e
def test_hf_checkpoint_reads_its_frames(trained, encoded):
    import torch
    from transformers import InternVLForConditionalGeneration

    model = InternVLForConditionalGeneration.from_pretrained(str(trained[0]), dtype=torch.float32).eval()

    def forward(ids, labels, pixels):
        return model(input_ids=ids, labels=labels, pixel_values=pixels).loss.item()

    def generate(prompt, pixels):
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), pixel_values=pixels,
                             max_new_tokens=12, do_sample=False)
        return out[0, prompt.shape[1]:].tolist()

    _check_frames_matter(forward, generate, encoded)


@pytest.mark.e2e
def test_remote_checkpoint_reads_its_frames(trained, encoded):
    import torch

    from ivl3_plugin.checkpoint.remote_load import load_remote_model

    model = load_remote_model(trained[1]).float().eval()
    from transformers import AutoConfig

    assert model.img_context_token_id == AutoConfig.from_pretrained(str(trained[0])).image_token_id

    def forward(ids, labels, pixels):
        flags = torch.ones(pixels.shape[0], 1, dtype=torch.long)
        return model(pixel_values=pixels, input_ids=ids, labels=labels, image_flags=flags).loss.item()

    def generate(prompt, pixels):
        out = model.generate(pixel_values=pixels, input_ids=prompt, attention_mask=torch.ones_like(prompt),
                             max_new_tokens=12, do_sample=False)
        return out[0].tolist()

    _check_frames_matter(forward, generate, encoded)
