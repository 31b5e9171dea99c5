"""Every shipped recipe: valid, parsed by ms-swift's own argument parser, official settings, fits its GPUs."""
from __future__ import annotations

import os

import pytest

from ivl3_plugin.resources import recipes_dir
from ivl3_plugin.recipe.catalog import OFFICIAL, all_recipes, render
from ivl3_plugin.recipe.mpo import MPO_FULL_SIZES
from ivl3_plugin.recipe.plan import PlanRequest, make_plan
from ivl3_plugin.hosts.swift.launch import swift_argv
from ivl3_plugin.recipe.config import load_recipe, recipe_stage, template_args, validate
from ivl3_plugin.template.spec import TemplateSpec

RECIPES = sorted(recipes_dir().glob("*.yaml"))
SIZES = ["1B", "2B", "8B", "9B", "14B", "38B", "78B"]


def test_every_size_has_full_and_lora_and_the_tiny_cpu_recipe():
    names = {p.stem for p in RECIPES}
    for size in SIZES:
        assert {f"internvl3-{size.lower()}-full", f"internvl3-{size.lower()}-lora",
                f"internvl3-{size.lower()}-mpo"} <= names
    assert {"tiny-cpu", "tiny-cpu-mpo"} <= names
    assert {p.stem for p in RECIPES if p.stem.endswith("-mpo-full")} == {
        f"internvl3-{s.lower()}-mpo-full" for s in MPO_FULL_SIZES}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_carries_its_stage(path):
    r = load_recipe(path)
    assert r.meta["stage"] == ("mpo" if "mpo" in path.stem else "sft") == recipe_stage(r.args)


@pytest.mark.parametrize("path", [p for p in RECIPES if "mpo" in p.stem and p.stem != "tiny-cpu-mpo"],
                         ids=lambda p: p.stem)
def test_mpo_recipes_use_internvls_mpo_settings(path):
    """InternVL's MPO script: sigmoid 0.8 + bco_pair 0.2 + rpo_alpha 1, beta 0.1, lr 5e-6 full; LoRA 1e-5."""
    r = load_recipe(path)
    a = r.args
    assert (a["rlhf_type"], a["loss_type"], a["loss_weights"], a["rpo_alpha"], a["beta"]) == (
        "dpo", ["sigmoid", "bco_pair"], [0.8, 0.2], 1.0, 0.1)
    assert a["learning_rate"] == (5e-6 if a["tuner_type"] == "full" else 1e-5)
    assert (a["warmup_ratio"], a["lr_scheduler_type"], a["weight_decay"]) == (0.03, "cosine", 0.05)
    assert "ref_model" not in a  # LoRA: the base model is the reference; full: ms-swift loads a copy of `model`
    assert "internvl2.0_mpo" in r.meta["source"]
    assert a["dataset"][0].startswith("<your preference pairs")


@pytest.mark.parametrize("path", [p for p in RECIPES if "mpo" not in p.stem and not p.stem.startswith("tiny")],
                         ids=lambda p: p.stem)
def test_gpu_sft_recipes_pad_on_the_left(path):
    """With several samples per micro-batch, left padding keeps ms-swift's logits to the answers, as the
    planner's memory assumes (tests/test_padding_side_e2e.py shows the losses equal right padding's)."""
    assert load_recipe(path).args["padding_side"] == "left"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates(path):
    assert validate(load_recipe(path)) == []


@pytest.fixture(scope="module")
def sft_parser():
    from swift.arguments import SftArguments
    from transformers import HfArgumentParser

    return HfArgumentParser([SftArguments])


@pytest.fixture(scope="module")
def rlhf_parser():
    from swift.arguments import RLHFArguments
    from transformers import HfArgumentParser

    return HfArgumentParser([RLHFArguments])


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_swift_reads_the_file_and_its_parser_accepts_every_argument(path, sft_parser, rlhf_parser, monkeypatch):
    """ms-swift's own config-file expansion, then its HfArgumentParser (types, choices, unknown keys):
    ``SftArguments`` for ``swift sft`` recipes, ``RLHFArguments`` for the preference (``swift rlhf``) ones.

    Parsing into a namespace stops before ``SftArguments.__post_init__``, which would load the model.
    """
    from swift.cli.main import parse_yaml_args

    monkeypatch.setattr(os, "environ", dict(os.environ))  # swift exports the ENV block: keep it local
    argv = [str(path)]
    parse_yaml_args(argv)
    assert argv == swift_argv(load_recipe(path).args)  # our launcher passes exactly what swift would
    recipe = load_recipe(path)
    parser = rlhf_parser if recipe_stage(recipe.args) == "mpo" else sft_parser
    namespace, unknown = parser.parse_known_args(argv)
    assert unknown == []
    assert namespace.template == "ivl3_video"
    assert namespace.tuner_type == recipe.args["tuner_type"]
    if recipe_stage(recipe.args) == "mpo":  # InternVL's MPO losses, as ms-swift reads them
        assert (namespace.rlhf_type, namespace.loss_type, namespace.loss_weights, namespace.rpo_alpha) == (
            "dpo", ["sigmoid", "bco_pair"], [0.8, 0.2], 1.0)
    assert os.environ.get("IVL3_MAX_TILES_IMAGE") == recipe.args.get("ENV", {}).get("IVL3_MAX_TILES_IMAGE")


def test_swift_parser_rejects_what_it_does_not_know(sft_parser):
    """The check above can fail: an unknown key and a wrong type are caught."""
    _, unknown = sft_parser.parse_known_args(["--model", "m", "--not_an_argument", "1"])
    assert unknown == ["--not_an_argument", "1"]
    with pytest.raises(SystemExit):
        sft_parser.parse_known_args(["--model", "m", "--per_device_train_batch_size", "four"])


def test_shipped_files_match_the_catalog():
    for name, recipe in all_recipes().items():
        assert (recipes_dir() / f"{name}.yaml").read_text() == render(name, recipe), f"regenerate {name}.yaml"


@pytest.mark.parametrize("size", SIZES)
def test_full_recipes_follow_the_official_scripts(size):
    r = load_recipe(recipes_dir() / f"internvl3-{size.lower()}-full.yaml")
    a, m = r.args, r.meta
    assert a["learning_rate"] == (1e-5 if size == "1B" else 2e-5)
    assert (a["warmup_ratio"], a["lr_scheduler_type"], a["weight_decay"]) == (0.03, "cosine", 0.05)
    assert a["freeze_vit"] is True and a["freeze_aligner"] is False and a["freeze_llm"] is False
    # the official max_dynamic_patch 12 is the template's own default; the recipe changes no template setting
    assert TemplateSpec(name=a["template"]).for_run(template_args(a)).max_tiles_image == 12
    assert m["global_batch"] == 128
    assert a["per_device_train_batch_size"] * m["gpus_per_node"] * m["nodes"] * a["gradient_accumulation_steps"] == 128
    assert m["gpus_per_node"] * m["nodes"] == OFFICIAL[size].gpus
    if size in ("38B", "78B"):
        assert a["deepspeed"] == "zero3"
    else:  # official ZeRO-1; the planner may move to ZeRO-2 and the file then says why
        assert a["deepspeed"] in ("zero1", "zero2")
        if a["deepspeed"] != "zero1":
            assert "Deviation from the official script: ZeRO-2" in (recipes_dir() / f"internvl3-{size.lower()}-full.yaml").read_text()


@pytest.mark.parametrize("size", SIZES)
def test_lora_recipes_use_rank_16_on_the_llm_only(size):
    a = load_recipe(recipes_dir() / f"internvl3-{size.lower()}-lora.yaml").args
    assert a["tuner_type"] == "lora" and a["lora_rank"] == 16 and a["lora_alpha"] == 32
    assert a["freeze_vit"] is True and a["freeze_aligner"] is True and a["freeze_llm"] is False


@pytest.mark.parametrize("path", [p for p in RECIPES if not p.stem.startswith("tiny-cpu")], ids=lambda p: p.stem)
def test_planner_says_each_recipe_fits_the_gpus_it_assumes(path):
    r = load_recipe(path)
    a, m = r.args, r.meta
    ds = a.get("deepspeed")
    zero = int(ds[4]) if ds else 0
    req = PlanRequest(model=m["model_size"], gpus_per_node=m["gpus_per_node"], nodes=m["nodes"],
                      gpu_memory_gib=m["gpu_memory_gb"], frames=m["frames"], tuner=a["tuner_type"],
                      max_micro_batch=a["per_device_train_batch_size"], stages=[(zero, "offload" in (ds or ""))],
                      stage=m["stage"])
    plan = make_plan(req)
    assert plan.fits, plan.notes
    assert plan.micro_batch == a["per_device_train_batch_size"]


@pytest.mark.parametrize("path", [p for p in RECIPES if not p.stem.startswith("tiny-cpu")], ids=lambda p: p.stem)
def test_layers_are_compiled_where_verified(path):
    """Regional compile (1.4x on one H200, docs/benchmarks.md) where it was checked to train: one GPU, DDP,
    ZeRO-1; not ZeRO-3 (refused) nor ZeRO-2 (not verified yet)."""
    a = load_recipe(path).args
    verified = a.get("deepspeed") in (None, "zero1") and recipe_stage(a) == "sft"  # not checked with swift rlhf
    assert ("ivl3_compile" in a.get("callbacks", [])) is verified


def test_offload_variants_say_how_much_host_memory_they_need():
    offload = [p for p in RECIPES if p.stem.endswith("-offload")]
    assert {p.stem for p in offload} >= {"internvl3-38b-full-offload", "internvl3-78b-full-offload"}
    for path in offload:
        r = load_recipe(path)
        assert r.args["deepspeed"] in ("zero2_offload", "zero3_offload")
        assert r.meta["host_memory_gb"] > 100 and "host memory" in path.read_text()
