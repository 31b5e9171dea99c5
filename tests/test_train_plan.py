"""``ivl3 train RECIPE --plan``: the planner's fastest setting applied to the launch (dry runs, no GPU)."""
from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from ivl3_plugin.cli import main
from ivl3_plugin.recipe.arch import ARCHS, hf_config_dict
from test_train_launch import with_inputs  # a dataset file for the GPU recipes

# the user's InternVL3-8B folder as far as the planner reads it: its config.json (weights are not needed)
MODEL_8B = Path(tempfile.mkdtemp(prefix="ivl3-8b-"))
atexit.register(shutil.rmtree, MODEL_8B, True)  # made at import, so removed at exit
(MODEL_8B / "config.json").write_text(json.dumps(hf_config_dict(ARCHS["8B"])))


def dry_run(capsys, *argv):
    code = main(["train", *with_inputs([*argv, f"model={MODEL_8B}"]), "--dry-run"])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def argv_value(out: str, flag: str) -> list:
    lines = [line.strip() for line in out.split("argv:")[1].split("command:")[0].splitlines() if line.strip()]
    i = lines.index(flag)
    values = []
    for item in lines[i + 1:]:
        if item.startswith("--"):
            break
        values.append(item)
    return values


def test_plan_on_one_80gib_gpu_checkpoints_only_some_layers_of_8b_full(capsys):
    code, out, err = dry_run(capsys, "internvl3-8b-full", "--gpus", "1", "--plan", "--gpu-memory", "80")
    assert code == 0, err
    env = dict(line.strip().split("=", 1) for line in out.split("argv:")[0].splitlines()[1:] if "=" in line)
    layers = json.loads(env["IVL3_CALLBACK_ARGS"])["ivl3_recompute"]["layers"]
    assert 0 < layers < 28
    assert argv_value(out, "--callbacks") == ["ivl3_compile", "ivl3_recompute"]
    assert argv_value(out, "--gradient_checkpointing") == ["True"]
    assert "--deepspeed" not in out  # one GPU: no DeepSpeed
    mb, accum = int(argv_value(out, "--per_device_train_batch_size")[0]), int(argv_value(out,
                                                                                  "--gradient_accumulation_steps")[0])
    assert mb * accum == 128  # the recipe's global batch
    assert "--plan for 1 GPU(s) of 80.0 GiB" in err and f"{layers} of 28 layers" in err


def test_plan_turns_checkpointing_off_where_it_all_fits_and_the_user_still_wins(capsys):
    code, out, err = dry_run(capsys, "internvl3-8b-lora", "--gpus", "1", "--plan", "--gpu-memory", "139")
    assert code == 0, err
    assert argv_value(out, "--gradient_checkpointing") == ["False"] and "IVL3_CALLBACK_ARGS" not in out
    code, out, err = dry_run(capsys, "internvl3-8b-lora", "--gpus", "1", "--plan", "--gpu-memory", "139",
                             "gradient_checkpointing=true")
    assert argv_value(out, "--gradient_checkpointing") == ["True"] and "gradient_checkpointing kept" in err


def test_plan_without_a_gpu_or_gpu_memory_says_what_to_pass(capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the child process that reads torch.cuda sees no GPU
    code, out, err = dry_run(capsys, "internvl3-8b-lora", "--plan")
    assert code == 2 and "no GPU is visible" in err and "--gpu-memory" in err
    code, out, err = dry_run(capsys, "internvl3-8b-lora", "--gpu-memory", "80")
    assert code == 2 and "--gpu-memory is for --plan" in err
    code, out, err = dry_run(capsys, "tiny-cpu", "--plan", "--gpu-memory", "80")
    assert code == 2 and "nothing to plan" in err


def test_train_refuses_gpu_memory_that_is_not_a_number_of_gib(capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["train", "internvl3-8b-lora", "--plan", "--gpu-memory", "nan", "--dry-run"])
    assert exc.value.code == 2 and "--gpu-memory" in capsys.readouterr().err


def test_plan_pads_on_the_left_when_a_micro_batch_holds_several_samples_and_a_recipe_choice_stays():
    """Left padding keeps ms-swift's logits_to_keep to the answers (tests/test_padding_side_e2e.py), which is
    what the planner's memory counts; at micro-batch 1 there is no padding and nothing is added."""
    from ivl3_plugin.recipe.plan import PlanRequest, make_plan
    from ivl3_plugin.recipe.plan_apply import apply_plan

    def planned(max_micro_batch, args):
        plan = make_plan(PlanRequest(model="1B", gpus_per_node=1, gpu_memory_gib=80, tuner="lora", global_batch=8,
                                     max_micro_batch=max_micro_batch, checkpointing="auto", objective="fastest"))
        apply_plan(args, plan)
        return plan, args

    plan, args = planned(None, {})
    assert plan.micro_batch > 1 and args["padding_side"] == "left"
    plan, args = planned(1, {})
    assert plan.micro_batch == 1 and "padding_side" not in args
    plan, args = planned(None, {"padding_side": "right"})
    assert plan.micro_batch > 1 and args["padding_side"] == "right"  # the user's own choice stays


def test_uncompiled_plans_with_padded_batches_skip_padding_with_their_own_callback():
    """ZeRO-3 cannot compile, so ivl3_compile (which also makes the attention skip padding) is not set; at
    micro-batch > 1 ivl3_skip_padding does that alone.  Compiled plans and micro-batch 1 do not list it."""
    from ivl3_plugin.recipe.plan import PlanRequest, make_plan
    from ivl3_plugin.recipe.plan_apply import apply_plan
    from ivl3_plugin.recipe.row_attention import CALLBACK_NAME

    def callbacks(**kw):
        req = dict(model="38B", gpus_per_node=8, gpu_memory_gib=80, tuner="lora", global_batch=64,
                   checkpointing="auto", objective="largest-batch", stages=[(3, False)])
        plan = make_plan(PlanRequest(**{**req, **kw}))
        args = {}
        apply_plan(args, plan)
        return plan, args.get("callbacks", [])

    plan, cbs = callbacks(max_micro_batch=2)
    assert plan.deepspeed == "zero3" and plan.micro_batch == 2 and cbs == [CALLBACK_NAME]
    plan, cbs = callbacks(max_micro_batch=1)
    assert plan.micro_batch == 1 and CALLBACK_NAME not in cbs
    plan, cbs = callbacks(model="1B", gpus_per_node=1, global_batch=8, stages=None, objective="fastest")
    assert plan.compiled and plan.micro_batch > 1 and "ivl3_compile" in cbs and CALLBACK_NAME not in cbs
