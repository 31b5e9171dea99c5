"""The LLaMA-Factory adapter's launch side, in the ms-swift environment (no llamafactory needed).

``ivl3 train --host llamafactory`` calls :func:`launch_argv` here; the real
training runs are in ``tests/lf_host`` (``.venv-lf``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ivl3_plugin.hosts.llamafactory import datasets as lf_datasets, launch as host
from ivl3_plugin.datasets import DatasetSpec
from ivl3_plugin.plugins import build
from ivl3_plugin import hookimpl

RECIPE = {"model": "/models/tiny", "template": "ivl3_video", "dataset": ["ivl3-demo"], "tuner_type": "lora",
          "torch_dtype": "bfloat16", "max_steps": 5, "per_device_train_batch_size": 2, "learning_rate": 1e-4,
          "gradient_checkpointing": True, "output_dir": "out/x", "custom_register_path": ["ivl3_plugin"],
          "strict": True, "target_modules": ["all-linear"], "max_length": 4096, "freeze_vit": True}


def _pairs(argv):
    i = argv.index("ivl3_plugin.hosts.llamafactory.run") + 1
    rest = argv[i:]
    return dict(zip(rest[::2], rest[1::2]))


def test_launch_argv_translates_an_ms_swift_recipe(monkeypatch, tmp_path):
    monkeypatch.delenv("NPROC_PER_NODE", raising=False)
    monkeypatch.delenv("FORCE_TORCHRUN", raising=False)
    monkeypatch.setenv("IVL3_LLAMAFACTORY_PYTHON", "/opt/lf/bin/python")
    monkeypatch.chdir(tmp_path)
    argv, env = host.launch_argv(RECIPE, {"max_steps": 7, "val_dataset": "ivl3-demo", "save_strategy": False})
    assert argv[:3] == ["/opt/lf/bin/python", "-m", "ivl3_plugin.hosts.llamafactory.run"]
    args = _pairs(argv)
    assert args["--model_name_or_path"] == "/models/tiny"
    assert args["--finetuning_type"] == "lora" and args["--lora_target"] == "all-linear"
    assert args["--bf16"] == "true" and args["--fp16"] == "false"
    assert args["--max_steps"] == "7"  # override wins
    assert args["--dataset"] == "ivl3-demo" and args["--eval_dataset"] == "ivl3-demo-val"
    assert args["--cutoff_len"] == "4096" and args["--freeze_vision_tower"] == "true"
    assert args["--disable_gradient_checkpointing"] == "false"
    assert args["--save_strategy"] == "no"  # `save_strategy=no` on the command line is YAML False
    assert args["--output_dir"] == str(tmp_path / "out" / "x")
    assert "--custom_register_path" not in args and "--strict" not in args
    assert env["HF_HUB_OFFLINE"] in ("0", "1")


def test_launch_argv_multi_gpu_runs_our_module_under_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("IVL3_LLAMAFACTORY_PYTHON", sys.executable)
    monkeypatch.setenv("IVL3_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    argv, _ = host.launch_argv({**RECIPE, "deepspeed": "zero2"}, {"nproc_per_node": 8, "nnodes": 2,
                                                                  "node_rank": 1, "master_addr": "10.0.0.1"})
    assert argv[1:3] == ["-m", "torch.distributed.run"]
    assert argv[argv.index("--nproc_per_node") + 1] == "8" and argv[argv.index("--nnodes") + 1] == "2"
    assert argv[argv.index("--node_rank") + 1] == "1" and argv[argv.index("--master_addr") + 1] == "10.0.0.1"
    assert argv[argv.index("-m", 3) + 1] == "ivl3_plugin.hosts.llamafactory.run"
    ds_path = Path(_pairs(argv)["--deepspeed"])
    assert ds_path.parent == tmp_path / "home" / "llamafactory"
    assert json.loads(ds_path.read_text())["zero_optimization"]["stage"] == 2
    assert not (tmp_path / "out").exists()  # building the argv writes nothing in the run's folder


def test_launch_argv_refuses_keys_llamafactory_cannot_honour():
    with pytest.raises(ValueError, match="rlhf_type"):
        host.launch_argv({**RECIPE, "rlhf_type": "dpo"}, {})
    with pytest.raises(ValueError, match="'template'"):
        host.launch_argv({k: v for k, v in RECIPE.items() if k != "template"}, {})


def _converted(folder: Path) -> Path:
    (folder / "llamafactory").mkdir(parents=True)
    for split in ("train", "val"):
        (folder / "llamafactory" / f"{split}.json").write_text("[]")
    info = {f"ivl3_{s}": {"file_name": f"{s}.json", "formatting": "sharegpt"} for s in ("train", "val")}
    (folder / "llamafactory" / "dataset_info.json").write_text(json.dumps(info))
    return folder


def test_dataset_info_resolves_registered_names_folders_and_val_splits(tmp_path):
    demo = _converted(tmp_path / "demo")
    other = _converted(tmp_path / "other")

    class Plugin:
        @hookimpl
        def register_datasets(register):
            register("my-set", DatasetSpec(path=demo))

    plugins = build({"p": Plugin}, entry_points=False)
    base = tmp_path / "user_data"
    base.mkdir()
    (base / "dataset_info.json").write_text(json.dumps({"theirs": {"file_name": "theirs.json"}}))
    target = lf_datasets.write_dataset_info(tmp_path / "gen", ["my-set", "my-set-val", str(other)], base_dir=base,
                                     plugins=plugins)
    info = json.loads(target.read_text())
    assert info["my-set"]["file_name"] == str(demo / "llamafactory" / "train.json")
    assert info["my-set-val"]["file_name"] == str(demo / "llamafactory" / "val.json")
    assert info[str(other)]["file_name"] == str(other / "llamafactory" / "train.json")
    assert info["theirs"]["file_name"] == str(base / "theirs.json")  # the user's own entries kept, absolutised


def test_dataset_errors_name_the_dataset_and_what_to_do(tmp_path):
    plugins = build({}, entry_points=False)
    with pytest.raises(ValueError, match="'nope'.*neither a registered dataset"):
        lf_datasets.lf_entry("nope", plugins)
    (tmp_path / "raw").mkdir()
    with pytest.raises(ValueError, match="convert it first"):
        lf_datasets.lf_entry(str(tmp_path / "raw"), plugins)


def test_shipped_recipes_translate_and_ivl3_compile_is_dropped_with_a_warning(monkeypatch, tmp_path, caplog):
    """Every shipped GPU recipe (they set ``callbacks: [ivl3_compile]`` or, ZeRO-2/3, ``[ivl3_skip_padding]``)
    translates, our callbacks dropped with a warning; other callbacks are refused."""
    from ivl3_plugin.resources import recipes_dir
    from ivl3_plugin.recipe.config import load_recipe

    monkeypatch.setenv("IVL3_HOME", str(tmp_path / "home"))
    for path in sorted(recipes_dir().glob("internvl3-*.yaml")):
        if load_recipe(path).meta["stage"] == "mpo":  # preference recipes: ms-swift only, said plainly
            with pytest.raises(ValueError, match="preference \\(mpo\\) recipes run on ms-swift only"):
                host.lf_args(load_recipe(path).args)
            continue
        caplog.clear()
        args = host.lf_args(load_recipe(path).args)
        assert "callbacks" not in args
        ours = bool(load_recipe(path).args.get("callbacks"))
        assert ("LLaMA-Factory trains eager" in caplog.text) is ours, path.name
    with pytest.raises(ValueError, match=r"callbacks \(lisa\)"):
        host.lf_args({**RECIPE, "callbacks": ["ivl3_compile", "lisa"]})
