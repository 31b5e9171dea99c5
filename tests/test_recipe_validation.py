"""Recipe checks name the file and the field; overrides, batch maths and the InternVL-flags translation."""
from __future__ import annotations

import pytest

from ivl3_plugin.recipe.internvl_args import from_internvl_args
from ivl3_plugin.recipe.config import (RecipeError, apply_overrides, dump_recipe, fit_grad_accum, load_recipe, template_args,
                                       parse_overrides, parse_recipe, validate)

GOOD = """\
#@ivl3 model_size: 8B
#@ivl3 gpus_per_node: 8
#@ivl3 nodes: 1
#@ivl3 global_batch: 128
model: OpenGVLab/InternVL3-8B
template: ivl3_video
dataset: [ivl3-demo]
tuner_type: full
per_device_train_batch_size: 4
gradient_accumulation_steps: 4
learning_rate: 2.0e-5
deepspeed: zero1
"""


def write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_metadata_is_read_from_comment_lines_and_hidden_from_swift(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r.meta == {"model_size": "8B", "gpus_per_node": 8, "nodes": 1, "global_batch": 128}
    assert "model_size" not in r.args and r.args["model"] == "OpenGVLab/InternVL3-8B"
    assert validate(r) == []
    again = parse_recipe(dump_recipe(r))
    assert (again.args, again.meta) == (r.args, r.meta)


@pytest.mark.parametrize("edit, field", [
    (lambda t: t.replace("model: OpenGVLab/InternVL3-8B\n", ""), "'model' is required"),
    (lambda t: t.replace("learning_rate: 2.0e-5", "learning_rate: fast"), "field 'learning_rate'"),
    (lambda t: t.replace("per_device_train_batch_size: 4", "per_device_train_batch_size: 0"),
     "field 'per_device_train_batch_size': must be >= 1"),
    (lambda t: t.replace("deepspeed: zero1", "deepspeed: zero9"), "field 'deepspeed'"),
    (lambda t: t.replace("tuner_type: full", "tuner_type: qlora"), "field 'tuner_type'"),
    (lambda t: t.replace("tuner_type: full", "tuner_type: lora"), "field 'lora_rank' is required"),
    (lambda t: "#@ivl3 gpus: 8\n" + t, "metadata field 'gpus' is unknown"),
    (lambda t: t.replace("#@ivl3 nodes: 1", "#@ivl3 nodes: two"), "metadata field 'nodes'"),
    (lambda t: t + "use_liger_kernel: yes please\n", "field 'use_liger_kernel': expected true or false"),
    (lambda t: t + "callbacks: ivl3_compile\n", "field 'callbacks': expected a list"),
    (lambda t: t.replace("deepspeed: zero1", "deepspeed: zero3") + "callbacks: [ivl3_compile]\n",
     "field 'callbacks': ivl3_compile does not work with DeepSpeed ZeRO-3"),
])
def test_errors_name_the_file_and_the_field(tmp_path, edit, field):
    path = write(tmp_path, edit(GOOD))
    problems = validate(load_recipe(path))
    assert problems, "expected a problem"
    assert any(field in p and str(path) in p for p in problems), problems


def test_liger_kernel_is_checked_before_launch(tmp_path, monkeypatch):
    """``use_liger_kernel: true`` without the package fails validation naming the field and the install."""
    import importlib.util

    path = write(tmp_path, GOOD + "use_liger_kernel: true\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "liger_kernel" else real(name, *a))
    problems = validate(load_recipe(path))
    assert any("'use_liger_kernel'" in p and "ivl3-plugin[liger]" in p and str(path) in p for p in problems), problems
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "liger_kernel" else real(name, *a))
    assert validate(load_recipe(path)) == []


def test_batch_maths_names_every_factor(tmp_path):
    r = load_recipe(write(tmp_path, GOOD.replace("gradient_accumulation_steps: 4", "gradient_accumulation_steps: 2")))
    (problem,) = validate(r)
    assert "4 x 8 GPUs x gradient_accumulation_steps 2 = 64" in problem and "'global_batch' is 128" in problem
    # the same recipe is right on 16 GPUs
    assert validate(r, world_size=16) == []


def test_deepspeed_json_file_is_resolved_next_to_the_recipe(tmp_path):
    (tmp_path / "deepspeed").mkdir()
    (tmp_path / "deepspeed" / "mine.json").write_text("{}")
    r = load_recipe(write(tmp_path, GOOD.replace("deepspeed: zero1", "deepspeed: deepspeed/mine.json")))
    assert validate(r) == []
    r = load_recipe(write(tmp_path, GOOD.replace("deepspeed: zero1", "deepspeed: deepspeed/missing.json")))
    assert any("field 'deepspeed'" in p for p in validate(r))


def test_compile_callback_is_checked_against_a_zero3_config_file(tmp_path):
    """A DeepSpeed JSON of stage 3 is refused with ivl3_compile just as the name 'zero3' is; stage 2 passes."""
    (tmp_path / "z.json").write_text('{"zero_optimization": {"stage": 3}}')
    text = GOOD.replace("deepspeed: zero1", "deepspeed: z.json") + "callbacks: [ivl3_compile]\n"
    problems = validate(load_recipe(write(tmp_path, text)))
    assert any("'callbacks'" in p and "ZeRO-3" in p and "z.json" in p for p in problems), problems
    (tmp_path / "z.json").write_text('{"zero_optimization": {"stage": 2}}')
    assert validate(load_recipe(write(tmp_path, text))) == []


def test_fit_grad_accum_keeps_the_global_batch(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert fit_grad_accum(r, 8) == (4, None)
    accum, note = fit_grad_accum(r, 16)
    assert accum == 2 and "4 x 16 x 2" in note
    accum, note = fit_grad_accum(r, 24)  # 128 / (4 x 24) is not whole: round up and say so
    assert accum == 2 and "not a multiple" in note


def test_overrides_are_yaml_typed_and_reach_env_and_meta(tmp_path):
    o = parse_overrides(["dataset=[a, b]", "freeze_vit=false", "per_device_train_batch_size=2",
                         "ENV.IVL3_TIMESTAMPS=1", "meta.global_batch=64", "--learning_rate=1e-5"])
    assert o["dataset"] == ["a", "b"] and o["freeze_vit"] is False and o["per_device_train_batch_size"] == 2
    r = apply_overrides(load_recipe(write(tmp_path, GOOD)), o)
    assert r.args["ENV"] == {"IVL3_TIMESTAMPS": "1"} and r.meta["global_batch"] == 64
    assert r.args["learning_rate"] == "1e-5"  # YAML 1.1 reads 1e-5 as text; swift parses it as a float
    assert validate(r, world_size=8) == []
    with pytest.raises(RecipeError, match="key=value"):
        parse_overrides(["learning_rate"])


OFFICIAL_LORA = """--model_name_or_path "OpenGVLab/InternVL3-8B" --conv_style "internvl2_5" --freeze_llm True
 --freeze_mlp True --freeze_backbone True --use_llm_lora 16 --max_dynamic_patch 12 --bf16 True
 --per_device_train_batch_size 4 --gradient_accumulation_steps 2 --learning_rate 2e-5 --weight_decay 0.05
 --warmup_ratio 0.03 --lr_scheduler_type "cosine" --max_seq_length 8192 --grad_checkpoint True
 --deepspeed "zero_stage1_config.json" --meta_path "shell/data/my.json" --some_new_flag 3"""


def test_official_lora_script_flags_become_a_swift_lora_recipe():
    r, notes = from_internvl_args([OFFICIAL_LORA])
    a = r.args
    assert a["model"] == "OpenGVLab/InternVL3-8B" and a["tuner_type"] == "lora"
    assert (a["lora_rank"], a["lora_alpha"]) == (16, 32)
    assert (a["freeze_llm"], a["freeze_vit"], a["freeze_aligner"]) == (False, True, True)  # LoRA on the LLM only
    assert template_args(a) == {"ivl3_video": {"max_tiles_image": 12}} and a["deepspeed"] == "zero1"
    assert (a["learning_rate"], a["max_length"], a["gradient_checkpointing"]) == (2e-5, 8192, True)
    assert a["padding_side"] == "left"  # 4 per device: answer-only logits (tests/test_padding_side_e2e.py)
    assert r.meta["model_size"] == "8B"
    assert any("--some_new_flag" in n and "not translated" in n for n in notes)
    assert any("--meta_path" in n for n in notes)
    assert validate(r) == []


def test_official_full_script_flags_and_errors():
    r, _ = from_internvl_args(["--model_name_or_path", "OpenGVLab/InternVL3-78B", "--freeze_llm", "False",
                               "--freeze_mlp", "False", "--freeze_backbone", "True",
                               "--deepspeed", "zero_stage3_config_100b.json"])
    assert r.args["tuner_type"] == "full" and r.args["deepspeed"] == "zero3"
    assert (r.args["freeze_llm"], r.args["freeze_aligner"], r.args["freeze_vit"]) == (False, False, True)
    with pytest.raises(RecipeError, match="--freeze_llm: expected True or False"):
        from_internvl_args(["--model_name_or_path", "m", "--freeze_llm", "maybe"])
    with pytest.raises(RecipeError, match="--learning_rate: expected float"):
        from_internvl_args(["--model_name_or_path", "m", "--learning_rate", "fast"])
    with pytest.raises(RecipeError, match="nothing would train"):
        from_internvl_args(["--model_name_or_path", "m", "--freeze_llm", "True", "--freeze_mlp", "True"])
    with pytest.raises(RecipeError, match="model_name_or_path"):
        from_internvl_args(["--learning_rate", "1e-5"])


def test_cli_from_internvl_args_writes_a_recipe_train_accepts(tmp_path, capsys):
    from ivl3_plugin.cli import main

    out = tmp_path / "migrated.yaml"
    rc = main(["recipe", "from-internvl-args", "-o", str(out), "--gpus", "2", "--",
               "--model_name_or_path", "OpenGVLab/InternVL3-2B", "--per_device_train_batch_size", "2",
               "--gradient_accumulation_steps", "4", "--use_llm_lora", "8"])
    assert rc == 0
    r = load_recipe(out)
    assert r.meta["global_batch"] == 16 and r.args["lora_rank"] == 8
    assert main(["recipe", "check", str(out)]) == 0
    model = tmp_path / "InternVL3-2B"  # ivl3 train wants the checkpoint folder the user downloaded
    model.mkdir()
    assert main(["train", str(out), f"model={model}", "dataset=[ivl3-demo]", "--dry-run"]) == 0
    assert "--lora_rank\n  8" in capsys.readouterr().out


def test_bare_yaml_1_1_words_stay_words_in_overrides():
    """`save_strategy=no` must reach ms-swift as `no`, not `False` (which its parser refuses)."""
    got = parse_overrides(["save_strategy=no", "eval_strategy=No", "freeze_vit=false", "max_steps=3", "report_to=off"])
    assert got == {"save_strategy": "no", "eval_strategy": "No", "freeze_vit": False, "max_steps": 3, "report_to": "off"}
