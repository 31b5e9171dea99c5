"""A real LLaMA-Factory training run of the tiny model with our template on an ``ivl3 convert`` dataset.

Launched exactly as ``ivl3 train --host llamafactory`` does: the argv and env
from :func:`ivl3_plugin.hosts.llamafactory.launch.launch_argv`, in a subprocess.
"""
from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

pytest.importorskip("llamafactory.data")

from ivl3_plugin.hosts.llamafactory.launch import launch_argv  # noqa: E402


def recipe(model, dataset, out, **extra):
    return {"model": str(model), "template": "ivl3_video", "dataset": [str(dataset)], "val_dataset": [str(dataset)],
            "tuner_type": "full", "torch_dtype": "float32", "max_steps": 3, "learning_rate": 3e-3,
            "lr_scheduler_type": "constant", "warmup_ratio": 0.0, "per_device_train_batch_size": 2,
            "logging_steps": 1, "save_strategy": "no", "eval_strategy": "no", "report_to": "none", "seed": 0,
            "gradient_checkpointing": False, "dataloader_num_workers": 0, "output_dir": str(out),
            "custom_register_path": ["ivl3_plugin"], "strict": True, "check_model": False, **extra}


def run(argv, env, cwd):
    full = {**os.environ, **env, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    full.pop("FORCE_TORCHRUN", None)
    return subprocess.run(argv, cwd=cwd, env=full, capture_output=True, text=True, timeout=1500)


def losses(out):
    log = out / "trainer_log.jsonl"
    assert log.is_file(), f"no {log}"
    return [json.loads(l)["loss"] for l in log.read_text().splitlines() if '"loss"' in l]


def test_llamafactory_trains_tiny_model_with_our_template(tiny_model, converted_lf, tmp_path):
    out = tmp_path / "out"
    argv, env = launch_argv(recipe(tiny_model, converted_lf, out), {"max_steps": 3})
    assert argv[1:3] == ["-m", "ivl3_plugin.hosts.llamafactory.run"]
    proc = run(argv, env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    got = losses(out)
    assert len(got) == 3 and all(math.isfinite(l) and l > 0 for l in got), got
    assert (out / "model.safetensors").is_file()
    # LLaMA-Factory logged the first encoded sample: our system prompt and frame layout
    log = proc.stdout + proc.stderr
    assert "Frame1: <img><IMG_CONTEXT>" in log and "</img>\nFrame2: <img>" in log
    info = json.loads((out / "ivl3_lf_data" / "dataset_info.json").read_text())
    assert set(info) == {str(converted_lf), f"{converted_lf}-val"}


def test_registrations_survive_a_torchrun_launch(tiny_model, converted_lf, tmp_path):
    """Under torchrun every rank imports our launch module, so the template exists there too."""
    out = tmp_path / "out"
    argv, env = launch_argv(recipe(tiny_model, converted_lf, out, max_steps=2), {"force_torchrun": True,
                                                                                 "master_port": 29611})
    assert argv[1:3] == ["-m", "torch.distributed.run"] and "ivl3_plugin.hosts.llamafactory.run" in argv
    proc = run(argv, env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert len(losses(out)) == 2


def test_ivl3_train_host_llamafactory_runs_the_shipped_cpu_recipe(tiny_model, converted_lf, tmp_path):
    """``ivl3 train tiny-cpu --host llamafactory``: recipe -> launch_argv -> our launch module -> run_exp."""
    import shutil
    import sys

    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    shutil.copytree(converted_lf, home / "datasets" / "demo")  # what `--dataset ivl3-demo` resolves to
    (home / "tiny-internvl3").symlink_to(tiny_model, target_is_directory=True)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "ivl3_plugin", "train", "tiny-cpu", "--host", "llamafactory",
            "max_steps=2", "logging_steps=1", "save_strategy=no", f"output_dir={out}"]
    proc = run(argv, {"IVL3_HOME": str(home)}, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "ivl3_plugin.hosts.llamafactory.run" in proc.stderr  # the launch line ivl3 train prints
    assert len(losses(out)) == 2
    info = json.loads((out / "ivl3_lf_data" / "dataset_info.json").read_text())
    assert info["ivl3-demo"]["file_name"] == str(home / "datasets" / "demo" / "llamafactory" / "train.json")
