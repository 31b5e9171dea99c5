"""A plan applied to a recipe: what ``ivl3 train --plan`` does, and the request it plans for.

``plan_for_recipe`` asks the planner (objective ``fastest``) about the recipe's own model, tuner,
frames, global batch and sequence cap on the GPUs of the launch; ``apply_plan`` writes the answer
into the recipe's ms-swift arguments: batch split, DeepSpeed stage, gradient checkpointing, and the
callbacks (``ivl3_compile`` where the stage allows it; ``ivl3_recompute`` with its layer count in
the ENV block's callback run settings (the setting ``CALLBACK_ARGS``) when only some layers are
checkpointed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from .callback_args import set_callback_args
from .compile import CALLBACK_NAME as COMPILE_CALLBACK, RECOMPUTE_CALLBACK
from .config import Recipe, RecipeError, global_batch, recipe_stage
from .length_group import LENGTH_GROUP_CALLBACK
from .plan import Plan, PlanRequest, make_plan
from .row_attention import CALLBACK_NAME as SKIP_PADDING_CALLBACK

PLANNED_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "deepspeed", "gradient_checkpointing",
                "padding_side", "callbacks")


def plan_request_for(recipe: Recipe, gpus_per_node: int, nodes: int, gpu_memory_gib: float,
                     headroom: float = 0.9) -> PlanRequest:
    """The planner's question for ``recipe`` on ``gpus_per_node`` x ``nodes`` GPUs of ``gpu_memory_gib``."""
    a, m = recipe.args, recipe.meta
    if m.get("cpu"):
        raise RecipeError(f"{recipe.where}: a CPU recipe has nothing to plan: drop --plan")
    model = str(a.get("model") or "")
    if not Path(model).expanduser().exists():
        if "model_size" not in m:
            raise RecipeError(f"{recipe.where}: --plan needs the model: a local model folder in field 'model' or "
                              "metadata field 'model_size'")
        model = str(m["model_size"])
    tuner = a.get("tuner_type")
    if a.get("rlhf_type") not in (None, "dpo"):
        raise RecipeError(f"{recipe.where}: --plan plans supervised and DPO/MPO training, field 'rlhf_type' is "
                          f"{a['rlhf_type']!r}")
    if tuner not in ("full", "lora"):
        raise RecipeError(f"{recipe.where}: --plan plans full or LoRA fine-tuning, field 'tuner_type' is {tuner!r}")
    return PlanRequest(model=model, gpus_per_node=gpus_per_node, nodes=nodes, gpu_memory_gib=gpu_memory_gib,
                       frames=int(m.get("frames", 16)), max_length=int(a.get("max_length") or 0), tuner=tuner,
                       global_batch=int(m.get("global_batch") or global_batch(a, gpus_per_node * nodes)),
                       max_micro_batch=None, lora_rank=int(a.get("lora_rank") or 16),
                       lora_dropout=float(a.get("lora_dropout", 0.05) or 0.0), checkpointing="auto",
                       headroom=headroom, objective="fastest", stage=recipe_stage(a),
                       length_group=LENGTH_GROUP_CALLBACK in (a.get("callbacks") or []))


def plan_for_recipe(recipe: Recipe, gpus_per_node: int, nodes: int, gpu_memory_gib: float) -> Plan:
    try:
        return make_plan(plan_request_for(recipe, gpus_per_node, nodes, gpu_memory_gib))
    except ValueError as exc:
        if isinstance(exc, RecipeError):
            raise
        raise RecipeError(f"{recipe.where}: --plan: {exc}") from None


def plan_settings(plan: Plan) -> Dict[str, Any]:
    """The ms-swift arguments that carry out ``plan`` (what ``ivl3 train --plan`` sets), callbacks aside."""
    return {"per_device_train_batch_size": plan.micro_batch, "gradient_accumulation_steps": plan.grad_accum,
            "deepspeed": plan.deepspeed, "gradient_checkpointing": plan.checkpoint_layers > 0}


def speed_callbacks(plan: Plan) -> List[str]:
    """``ivl3_compile`` where the plan's stage compiles (it also makes the attention skip padding), else
    ``ivl3_skip_padding`` when a micro-batch pads: several fine-tuning samples, or any preference batch (its
    chosen and rejected answers differ in length); the recipes and ``--plan`` share it."""
    if plan.compiled:
        return [COMPILE_CALLBACK]
    if plan.micro_batch > 1 or plan.request.stage == "mpo":
        return [SKIP_PADDING_CALLBACK]
    return []


def apply_plan(args: Dict[str, Any], plan: Plan) -> None:
    """Write ``plan`` into a recipe's ms-swift arguments, in place: batch split, DeepSpeed, checkpointing,
    left padding when a micro-batch holds more than one sample (a recipe's own ``padding_side`` stays),
    and the callbacks: ``speed_callbacks`` (``ivl3_compile``, else ``ivl3_skip_padding`` where a batch pads),
    ``ivl3_recompute`` with its layer count
    (a run setting in the ENV block) when only some layers are checkpointed, and ``ivl3_length_group`` when the
    request asks for it and a micro-batch holds more than one sample."""
    for key, value in plan_settings(plan).items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    callbacks = [c for c in (args.get("callbacks") or []) if c not in (COMPILE_CALLBACK, RECOMPUTE_CALLBACK)]
    callbacks += [c for c in speed_callbacks(plan) if c not in callbacks]
    if plan.micro_batch > 1 and "padding_side" not in args:
        args["padding_side"] = "left"  # answers end together: ms-swift's logits_to_keep keeps only them (memory.py)
    if plan.request.length_group and plan.micro_batch > 1 and LENGTH_GROUP_CALLBACK not in callbacks:
        callbacks.append(LENGTH_GROUP_CALLBACK)  # a listed one stays; at micro-batch 1 there is nothing to group
    partial = 0 < plan.checkpoint_layers < plan.layers
    if partial:
        callbacks.append(RECOMPUTE_CALLBACK)
        set_callback_args(args, RECOMPUTE_CALLBACK, {"layers": plan.checkpoint_layers})
    else:
        set_callback_args(args, RECOMPUTE_CALLBACK, None)
    if callbacks:
        args["callbacks"] = callbacks
    else:
        args.pop("callbacks", None)


def planned_overrides(plan: Plan, recipe_args: Dict[str, Any]) -> List[str]:
    """``key=value`` words that turn ``recipe_args`` into the plan (for printing a copy-pasteable line)."""
    after = dict(recipe_args, ENV=dict(recipe_args.get("ENV") or {}))
    apply_plan(after, plan)
    words = []
    for key in PLANNED_KEYS:
        new = after.get(key)
        if new == recipe_args.get(key) and key not in ("per_device_train_batch_size", "gradient_accumulation_steps"):
            continue
        if new is None:
            words.append(f"{key}=null")
        elif isinstance(new, list):
            words.append(f"{key}=[{','.join(map(str, new))}]")
        else:
            words.append(f"{key}={str(new).lower() if isinstance(new, bool) else new}")
    if 0 < plan.checkpoint_layers < plan.layers:
        words.append(f"callback.{RECOMPUTE_CALLBACK}.layers={plan.checkpoint_layers}")
    return words
