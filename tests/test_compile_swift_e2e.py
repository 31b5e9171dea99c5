"""``--callbacks ivl3_compile`` in the real ms-swift CLI: the layers are compiled and train as eager ones do."""
from __future__ import annotations

import pytest

from swift_cli import convert_demo_subset, logged_losses, run_swift, swift_env


def _lora(tiny_model, data, out, cwd, extra, **env):
    return run_swift("sft", [
        "--custom_register_path", "ivl3_plugin", "--model", tiny_model, "--template", "ivl3_video",
        "--dataset", data, "--split_dataset_ratio", "0", "--tuner_type", "lora", "--torch_dtype", "float32",
        "--max_steps", "3", "--learning_rate", "1e-2", "--logging_steps", "1", "--per_device_train_batch_size", "1",
        "--gradient_accumulation_steps", "1", "--gradient_checkpointing", "true", "--save_strategy", "no",
        "--lora_dropout", "0",  # compiled dropout draws from another RNG stream: masks would differ
        "--eval_strategy", "no", "--dataloader_num_workers", "0", "--report_to", "none", "--seed", "0",
        "--output_dir", out, *extra], cwd=cwd, env=swift_env(**env))


@pytest.mark.e2e
def test_compiled_lora_run_matches_the_eager_run(tiny_model, demo_annotations, tmp_path):
    data = convert_demo_subset(demo_annotations, tmp_path, count=3, num_frames=2)
    eager = _lora(tiny_model, data, tmp_path / "eager", tmp_path, [])
    assert eager.returncode == 0, (eager.stdout + eager.stderr)[-5000:]
    comp = _lora(tiny_model, data, tmp_path / "compiled", tmp_path, ["--callbacks", "ivl3_compile"])
    log = comp.stdout + comp.stderr
    assert comp.returncode == 0, log[-5000:]
    assert ("ivl3 compile: base_model.model.model.vision_tower.encoder.layer: 2 x InternVLVisionLayer; "
            "base_model.model.model.language_model.layers: 2 x Qwen2DecoderLayer") in log
    assert "ivl3 compile: patch embedding as one matmul: base_model.model.model.vision_tower.embeddings." in log
    assert "ivl3 compile: ViT MLP: bias + GELU in the matmul's epilogue when frozen (2 MLPs)" in log
    # host_ahead: logits_to_keep, masks and accuracy from the batch's CPU copy; same losses, same accuracy
    assert "ivl3 compile: host ahead: batches copied to the GPU without waiting" in log
    assert "ivl3 compile: host ahead: logits_to_keep, padding and token accuracy from the batch's CPU copy" in log
    a, b = logged_losses(tmp_path / "eager"), logged_losses(tmp_path / "compiled")
    assert len(a) == len(b) == 3
    assert len(set(a)) > 1  # the adapters moved: step 3 sees what steps 1-2 learned
    assert b == pytest.approx(a, rel=1e-4)
    acc_a, acc_b = logged_losses(tmp_path / "eager", "token_acc"), logged_losses(tmp_path / "compiled", "token_acc")
    assert len(acc_a) == 3 and acc_b == pytest.approx(acc_a, abs=1e-9)


@pytest.mark.e2e
def test_ivl3_compile_0_runs_the_recipe_eager(tiny_model, demo_annotations, tmp_path):
    data = convert_demo_subset(demo_annotations, tmp_path, count=2, num_frames=2)
    proc = _lora(tiny_model, data, tmp_path / "out", tmp_path, ["--callbacks", "ivl3_compile", "--max_steps", "1"],
                 IVL3_COMPILE="0")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "IVL3_COMPILE=0, training uncompiled" in log and "ivl3 compile: base_model" not in log


@pytest.mark.e2e
def test_recompute_keeps_checkpointing_on_the_first_layers_only_and_trains_the_same(tiny_model, demo_annotations,
                                                                                      tmp_path):
    """``--callbacks ivl3_recompute`` with its layer count in IVL3_CALLBACK_ARGS: the log names the layers
    still checkpointed, and the losses equal those of the run that checkpoints every layer."""
    import json

    data = convert_demo_subset(demo_annotations, tmp_path, count=3, num_frames=2)
    full = _lora(tiny_model, data, tmp_path / "all", tmp_path, [])
    assert full.returncode == 0, (full.stdout + full.stderr)[-5000:]
    part = _lora(tiny_model, data, tmp_path / "part", tmp_path, ["--callbacks", "ivl3_recompute"],
                 IVL3_CALLBACK_ARGS=json.dumps({"ivl3_recompute": {"layers": 1}}))
    log = part.stdout + part.stderr
    assert part.returncode == 0, log[-5000:]
    assert "ivl3 recompute: base_model.model.model.language_model.layers: checkpointing on the first 1 of 2" in log
    a, b = logged_losses(tmp_path / "all"), logged_losses(tmp_path / "part")
    assert len(a) == len(b) == 3 and b == pytest.approx(a, rel=1e-5)
    missing = _lora(tiny_model, data, tmp_path / "missing", tmp_path, ["--callbacks", "ivl3_recompute",
                                                                          "--max_steps", "1"])
    assert missing.returncode != 0 and "needs its layer count" in missing.stdout + missing.stderr
