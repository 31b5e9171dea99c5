"""ivl3 export: LoRA merged into its base equals peft's merge_and_unload; real ms-swift runs exported."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from checkpoint_helpers import assert_bit_identical, image_batch, load_tensors
from swift_cli import convert_demo_subset, logged_losses, run_swift, swift_env


def _peft_adapter(base_dir, out, **lora):
    """A LoRA adapter saved by peft for the -hf model in ``base_dir`` (random A and B, so the delta is non-zero),
    and the state dict of peft's own merge_and_unload of it."""
    from peft import LoraConfig, get_peft_model
    from transformers import InternVLForConditionalGeneration

    torch.manual_seed(1)
    model = InternVLForConditionalGeneration.from_pretrained(str(base_dir))
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, **lora)
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if "modules_to_save" in name:
            param.data += 0.01 * torch.randn_like(param)  # a "trained" copy that must replace the base's
    peft_model.save_pretrained(str(out))
    merged = peft_model.merge_and_unload()
    reference = out.parent / f"{out.name}-peft-merged"
    merged.save_pretrained(str(reference))
    for name in ("tokenizer.json", "tokenizer_config.json"):  # a complete model folder
        shutil.copyfile(base_dir / name, reference / name)
    return out, reference


@pytest.mark.parametrize("variant", [
    dict(target_modules=["q_proj", "v_proj"]),  # language model and vision tower q/v projections
    dict(target_modules=["q_proj", "down_proj"], use_rslora=True, alpha_pattern={"down_proj": 2},
         modules_to_save=["multi_modal_projector"]),
], ids=["lora", "rslora-alpha-pattern-modules-to-save"])
def test_lora_merge_equals_peft_merge_and_unload(tiny_model, tmp_path, variant):
    from ivl3_plugin.checkpoint import export, to_remote
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    adapter, reference = _peft_adapter(tiny_model, tmp_path / "adapter", **variant)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    out = export(adapter, tmp_path / "exported")
    merged, base = load_tensors(out), load_tensors(tiny_model)
    assert_bit_identical(merged, load_tensors(reference))  # float32: bit for bit what peft computes
    changed = sorted(k for k in base if not torch.equal(base[k], merged[k]))
    assert any(k.startswith("vision_tower.") for k in changed) and any(k.startswith("language_model.") for k in changed)
    if "modules_to_save" in variant:
        assert "multi_modal_projector.linear_1.weight" in changed
    # the same merge written in the remote format is the remote conversion of peft's merge
    code = build_tiny_remote_model(tmp_path / "code")
    remote = export(adapter, tmp_path / "exported-remote", format="remote", code_from=code)
    assert_bit_identical(load_tensors(remote), load_tensors(to_remote(reference, tmp_path / "ref-remote",
                                                                      code_from=code)))


# ---- real ms-swift runs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def swift_setup(tmp_path_factory, demo_annotations):
    """The tiny remote-code InternVL3 (the format users start from) and four demo videos converted by ivl3 convert."""
    from ivl3_plugin.tiny.model import demo_text
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    root = tmp_path_factory.mktemp("export-e2e")
    remote = build_tiny_remote_model(root / "InternVL3-tiny", extra_text=demo_text())
    train = convert_demo_subset(demo_annotations, root, count=4, num_frames=2)
    return root, remote, train


def _sft(root, model, train, tuner, steps, out_name):
    out = root / out_name
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin", "--model", model, "--template", "ivl3_video",
        "--dataset", train, "--split_dataset_ratio", "0", "--tuner_type", tuner, "--torch_dtype", "float32",
        "--max_steps", steps, "--learning_rate", "1e-2" if tuner == "lora" else "1e-3",
        "--lr_scheduler_type", "constant", "--warmup_ratio", "0", "--per_device_train_batch_size", "2",
        "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--gradient_checkpointing", "false",
        "--save_strategy", "steps", "--save_steps", steps, "--save_only_model", "true", "--eval_strategy", "no",
        "--dataloader_num_workers", "0", "--report_to", "none", "--seed", "0", "--output_dir", out,
    ], cwd=root, env=swift_env(HF_MODULES_CACHE=root / "hf-modules"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    losses = logged_losses(out)
    assert len(losses) >= steps and all(loss == loss for loss in losses), losses
    return out


def _infer(root, args, name):
    result = root / f"{name}.jsonl"
    proc = run_swift("infer", [*args, "--max_new_tokens", "12", "--temperature", "0", "--result_path", result,
                               "--max_batch_size", "2", "--logprobs", "true"],
                     cwd=root, env=swift_env(HF_MODULES_CACHE=root / "hf-modules"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert len(rows) == 4
    return rows


def _tokens(rows):
    return [[t["token"] for t in row["logprobs"]["content"]] for row in rows]


def _logprobs(rows):
    return torch.tensor([[t["logprob"] for t in row["logprobs"]["content"]] for row in rows])


@pytest.fixture(scope="module")
def lora_run(swift_setup):
    root, remote, train = swift_setup
    return _sft(root, remote, train, "lora", 3, "out-lora")


@pytest.mark.e2e
def test_lora_run_on_the_remote_model_exports_to_hf_with_the_same_greedy_tokens(swift_setup, lora_run):
    """swift sft --tuner_type lora on the remote-code model; `ivl3 export` -> -hf; swift infer agrees."""
    root, remote, train = swift_setup
    ckpt = sorted(lora_run.rglob("checkpoint-3"))[0]
    dst = root / "exported-hf"
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "export", lora_run, dst, "--no-progress"],
                          capture_output=True, text=True, timeout=600, env=swift_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((dst / "config.json").read_text())["architectures"] == ["InternVLForConditionalGeneration"]
    with_adapters = _infer(root, ["--adapters", ckpt, "--val_dataset", train], "adapters")
    exported = _infer(root, ["--model", dst, "--custom_register_path", "ivl3_plugin", "--template", "ivl3_video",
                             "--val_dataset", train], "exported-hf")
    assert _tokens(exported) == _tokens(with_adapters)
    assert [r["response"] for r in exported] == [r["response"] for r in with_adapters]
    torch.testing.assert_close(_logprobs(exported), _logprobs(with_adapters), atol=1e-4, rtol=0)
    # and the adapter mattered: the base alone answers differently
    base = _infer(root, ["--model", remote, "--custom_register_path", "ivl3_plugin", "--template", "ivl3_video",
                         "--val_dataset", train], "base")
    assert not torch.allclose(_logprobs(base), _logprobs(with_adapters), atol=1e-4)


@pytest.mark.e2e
def test_lora_run_exports_to_remote_equal_to_peft_merge(swift_setup, lora_run):
    from peft import PeftConfig, PeftModel

    from ivl3_plugin.checkpoint import export, load_remote_model

    root, remote, _ = swift_setup
    ckpt = sorted(lora_run.rglob("checkpoint-3"))[0]
    dst = export(ckpt, root / "exported-remote", format="remote")
    config = PeftConfig.from_pretrained(str(ckpt))
    config.task_type = None  # a plain PeftModel: no generation needed to merge
    merged = PeftModel.from_pretrained(load_remote_model(remote), str(ckpt), config=config).merge_and_unload()
    assert_bit_identical(load_tensors(dst), {k: v for k, v in merged.state_dict().items()})
    assert (dst / "modeling_internvl_chat.py").read_text() == (remote / "modeling_internvl_chat.py").read_text()
    assert json.loads((dst / "config.json").read_text())["llm_config"]["rope_theta"] == 1e6


@pytest.mark.e2e
def test_full_run_exports_to_both_formats(swift_setup):
    """A full fine-tune of the remote model: transformers 5 saved it without rope_theta; the exports carry it
    and compute the same logits."""
    from transformers import InternVLForConditionalGeneration

    from ivl3_plugin.checkpoint import describe, export, load_remote_model

    root, remote, train = swift_setup
    run = _sft(root, remote, train, "full", 2, "out-full")
    ckpt = sorted(run.rglob("checkpoint-2"))[0]
    assert "rope_theta" not in json.loads((ckpt / "config.json").read_text())["llm_config"]
    assert any("rope_theta" in p for p in describe(ckpt)["problems"])
    hf = export(run, root / "full-hf")
    again = export(run, root / "full-remote", format="remote")
    assert describe(hf)["problems"] == [] and describe(again)["problems"] == []
    assert_bit_identical(load_tensors(again), load_tensors(ckpt))
    trained = load_remote_model(ckpt).eval()
    q = "language_model.model.layers.0.self_attn.q_proj.weight"  # trained (ms-swift freezes ViT and mlp1 by default)
    assert not torch.equal(load_tensors(ckpt)[q], load_tensors(remote)[q])
    model = InternVLForConditionalGeneration.from_pretrained(str(hf)).eval()
    pixel_values, ids = image_batch(trained.img_context_token_id)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=pixel_values, input_ids=ids).logits,
                                   trained(pixel_values=pixel_values, input_ids=ids).logits, atol=1e-5, rtol=0)
    rows = _infer(root, ["--model", again, "--custom_register_path", "ivl3_plugin", "--template", "ivl3_video",
                         "--val_dataset", train], "full-remote")
    rows_hf = _infer(root, ["--model", hf, "--custom_register_path", "ivl3_plugin", "--template", "ivl3_video",
                            "--val_dataset", train], "full-hf")
    assert _tokens(rows) == _tokens(rows_hf)
