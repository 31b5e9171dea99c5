"""The model reads its frames through LLaMA-Factory's side of our template (``tests/test_vision_use.py``'s twin).

A short real LLaMA-Factory run (projector and LLM trained) on four bundled videos that differ in colour
and direction; then each sample, encoded by LLaMA-Factory's encoder with our template and multimodal
plugin: its own frames give a clearly lower loss than another video's, and other frames change the
greedy prediction.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("llamafactory.data")

from ivl3_plugin.hosts.llamafactory.launch import launch_argv  # noqa: E402

from test_llamafactory_train import losses, recipe, run  # noqa: E402
from vision_films import write_pick_annotations  # noqa: E402

STEPS = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, demo_annotations):
    root = tmp_path_factory.mktemp("lf-vision")
    ann = write_pick_annotations(demo_annotations, root / "ann.jsonl")
    data = root / "data"
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "convert", str(ann), "-o", str(data), "--num-frames",
                           "2", "--val-fraction", "0", "--formats", "llamafactory", "--no-progress", "-j", "0",
                           "--cache-dir", str(root / "cache")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = root / "out"
    cfg = recipe(tiny_model, data, out, max_steps=STEPS, per_device_train_batch_size=4, freeze_aligner=False,
                 save_strategy="steps", save_steps=STEPS, logging_steps=5)
    cfg.pop("val_dataset")
    argv, env = launch_argv(cfg, {})
    proc = run(argv, env, root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    got = losses(out)
    assert got[-1] < 0.5 * got[0], got
    samples = json.loads((data / "llamafactory" / "train.json").read_text())
    return out, samples


def test_llamafactory_template_feeds_frames_the_model_reads(trained, tiny_model):
    import torch
    from llamafactory.data import template as lf_template
    from transformers import AutoProcessor, AutoTokenizer, InternVLForConditionalGeneration

    from ivl3_plugin.hosts.llamafactory import install as lf_install

    lf_install.install()
    out, samples = trained
    tokenizer, processor = AutoTokenizer.from_pretrained(tiny_model), AutoProcessor.from_pretrained(tiny_model)
    model = InternVLForConditionalGeneration.from_pretrained(str(out), dtype=torch.float32).eval()
    tpl = lf_template.TEMPLATES["ivl3_video"]

    def encode(sample, frames):
        messages = [{"role": "user" if m["role"] == "user" else "assistant", "content": m["content"]}
                    for m in sample["messages"]]
        expanded = tpl.mm_plugin.process_messages(messages, [], [frames], [], processor)
        prompt, answer = tpl.encode_oneturn(tokenizer, expanded)
        mm = tpl.mm_plugin.get_mm_inputs([], [frames], [], [0], [1], [0], [[0]], processor)
        ids = torch.tensor([prompt + answer])
        labels = torch.tensor([[-100] * len(prompt) + answer])
        return ids, labels, mm["pixel_values"].float(), len(prompt)

    n, right, wrong, changed = len(samples), [], [], 0
    with torch.no_grad():
        for i, s in enumerate(samples):
            other = samples[(i + 1) % n]["videos"][0]
            ids, labels, pixels, k = encode(s, s["videos"][0])
            _, _, other_pixels, _ = encode(s, other)
            right.append(model(input_ids=ids, labels=labels, pixel_values=pixels).loss.item())
            wrong.append(model(input_ids=ids, labels=labels, pixel_values=other_pixels).loss.item())
            prompt = ids[:, :k]
            gen = [model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), pixel_values=p,
                                  max_new_tokens=12, do_sample=False)[0, k:].tolist() for p in (pixels, other_pixels)]
            changed += gen[0] != gen[1]
    assert all(r < w for r, w in zip(right, wrong)), (right, wrong)
    assert sum(wrong) > 1.5 * sum(right), (right, wrong)  # the answer tokens that name nothing dilute the gap
    assert changed >= n - 1, f"only {changed}/{n} predictions changed with another video's frames"
