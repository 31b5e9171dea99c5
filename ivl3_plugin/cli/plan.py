"""``ivl3 plan``: the fastest setting that fits these GPUs -- recipe, ZeRO stage, checkpointing, batch split --
with its predicted memory (broken down) and time, and the runner-up."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..shared.layout import DEFAULT_NUM_FRAMES, TILE_TOKENS


def whole(name: str, minimum: int = 1):
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} takes a whole number, got {raw!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum}, got {value}")
        return value
    return parse


def gib(raw: str) -> float:
    """GPU memory in GiB: a finite number above 0 (nan, inf, 0 and negatives are refused)."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"GiB per GPU as a number, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"GiB per GPU must be a finite number above 0, got {raw!r}")
    return value


def share(raw: str) -> float:
    """The share of GPU memory a plan may fill: above 0, at most 1 (0.9 = 90 %)."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, got {raw!r}") from None
    if not math.isfinite(value) or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a share of the GPU's memory above 0 and at most 1 (0.9 = 90%), got {raw!r}")
    return value


def checkpointing(raw: str):
    if raw in ("auto", "all", "none"):
        return raw
    if raw.isdigit():
        return int(raw)
    raise argparse.ArgumentTypeError(f"auto, all, none or a number of LLM layers, got {raw!r}")


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="plan a fine-tune: the fastest recipe setting that fits, with memory and time",
                       description="Among the settings that fit (ZeRO stage, per-device batch, gradient checkpointing "
                                   "on all, none or only some LLM layers), pick the one predicted fastest; print its "
                                   "peak GPU memory per rank, broken down, its predicted time and the runner-up. GPU "
                                   "memory is in GiB (80 for A100/H100 80GB, 139 for H200).")
    p.add_argument("model", help="model size (1B, 2B, 8B, 9B, 14B, 38B, 78B) or a model directory with config.json")
    p.add_argument("--gpus", "--gpus-per-node", dest="gpus", type=whole("--gpus"), default=8,
                   help="GPUs per node (default 8)")
    p.add_argument("--nodes", type=whole("--nodes"), default=1)
    p.add_argument("--gpu-memory", type=gib, default=80.0, help="GiB per GPU (default 80)")
    p.add_argument("--num-frames", "--frames", dest="frames", type=whole("--frames"), default=DEFAULT_NUM_FRAMES,
                   help=f"frames per video sample (1 tile of {TILE_TOKENS} tokens each; default {DEFAULT_NUM_FRAMES})")
    p.add_argument("--max-length", type=whole("--max-length"), default=16384)
    p.add_argument("--tuner", choices=["full", "lora"], help="default: full if it fits, else LoRA")
    p.add_argument("--stage", choices=["sft", "mpo"], default="sft",
                   help="sft (default) or mpo: preference pairs (swift rlhf, DPO with MPO's losses): two sequences "
                        "per sample, a reference forward, and for full fine-tuning a frozen copy of the weights")
    p.add_argument("--global-batch", type=whole("--global-batch"), default=128)
    p.add_argument("--max-micro-batch", type=whole("--max-micro-batch"), default=None,
                   help="largest per-device batch to consider (default: up to the global batch / GPUs)")
    p.add_argument("--text-tokens", type=whole("--text-tokens", 0), default=256, help="prompt + answer tokens per sample")
    p.add_argument("--checkpointing", type=checkpointing, default="auto",
                   help="gradient checkpointing: auto (the planner chooses), all, none, or a number of LLM layers")
    p.add_argument("--no-grad-checkpointing", action="store_true", help="the same as --checkpointing none")
    p.add_argument("--headroom", type=share, default=0.9, help="share of GPU memory a plan may use (default 0.9)")
    p.add_argument("--length-group", action="store_true",
                   help="mixed-length data (give --frames of your longest clips): the run line groups micro-batches "
                        "by length (callback ivl3_length_group) when the per-device batch is above 1")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def option_dict(o) -> dict:
    return {"tuner": o.tuner, "deepspeed": o.deepspeed, "per_device_train_batch_size": o.micro_batch,
            "gradient_accumulation_steps": o.grad_accum, "checkpoint_layers": o.checkpoint_layers,
            "peak_gib": round(o.memory.total / 2 ** 30, 2), "samples_per_s": round(o.time.samples_per_s, 3),
            "bound": o.time.bound}


def plan_dict(plan, recipe: str, run_line: str) -> dict:
    return {
        "model": plan.arch.name, "params": plan.arch.params(), "recipe": recipe, "recipe_exact": plan.exact_recipe,
        "stage": plan.request.stage,
        "tuner": plan.tuner, "zero": plan.zero, "offload": plan.offload, "deepspeed": plan.deepspeed, "fits": plan.fits,
        "gpus_per_node": plan.request.gpus_per_node, "nodes": plan.request.nodes,
        "per_device_train_batch_size": plan.micro_batch, "gradient_accumulation_steps": plan.grad_accum,
        "global_batch": plan.global_batch, "seq_len": plan.memory.seq_len,
        "checkpoint_layers": plan.checkpoint_layers, "layers": plan.layers, "compiled": plan.compiled,
        "memory_gib": plan.memory.gib(), "budget_gib": plan.budget_bytes / 2 ** 30,
        "predicted_samples_per_s": plan.time.samples_per_s if plan.time else None,
        "predicted_step_s": plan.time.step_s if plan.time else None,
        "runner_up": option_dict(plan.runner_up) if plan.runner_up else None,
        "chosen_on_memory": plan.chosen_on_memory,
        "host_offload_gib_per_node": plan.memory.host_offload * plan.request.gpus_per_node / 2 ** 30,
        "alternatives": [dict(tuner=t, zero=z, offload=o, gib_at_batch_1=round(g, 2)) for t, z, o, g in plan.alternatives],
        "notes": plan.notes, "run": run_line,
    }


def shipped_recipes() -> dict:
    from .train import recipe_folders
    from ..recipe.launch import list_recipes

    return list_recipes(recipe_folders())


def run_line(plan, args) -> tuple:
    """(recipe name, ``ivl3 train`` line, notes): a recipe that exists, with the overrides the plan needs."""
    from ..recipe.config import load_recipe
    from ..recipe.plan_apply import planned_overrides

    known = shipped_recipes()
    name, notes, extra = plan.recipe_name, [], []
    if not plan.exact_recipe:
        notes.append(f"{args.model} is not the architecture of a released InternVL3 size: no recipe was written for "
                     f"it; the closest is {name} (InternVL3-{plan.size}), run with model={args.model}")
    if name not in known:
        notes.append(f"no recipe named {name} is installed; start from any recipe with these overrides")
        return name, None, notes
    if Path(args.model).expanduser().exists():  # a model folder: train that, not the recipe's hub model
        extra.append(f"model={args.model}")
    recipe = load_recipe(known[name])
    m = recipe.meta
    if int(m.get("global_batch", 0) or 0) != plan.request.global_batch:
        extra.append(f"meta.global_batch={plan.request.global_batch}")
    if int(m.get("frames", 0) or 0) != plan.request.frames:
        extra.append(f"meta.frames={plan.request.frames}")
    if int(recipe.args.get("max_length") or 0) != plan.request.max_length:
        extra.append(f"max_length={plan.request.max_length}")
    topo = f" --gpus {plan.request.gpus_per_node}" + (f" --nodes {plan.request.nodes}" if plan.request.nodes > 1 else "")
    line = f"ivl3 train {name} {' '.join(extra + planned_overrides(plan, recipe.args))}{topo}".replace("  ", " ")
    return name, line, notes


def run(args) -> int:
    from . import UserError
    from ..recipe.config import deepspeed_name
    from ..recipe.plan import TIE, PlanRequest, breakdown_rows, make_plan

    ckpt = "none" if args.no_grad_checkpointing else args.checkpointing
    try:
        req = PlanRequest(model=args.model, gpus_per_node=args.gpus, nodes=args.nodes, gpu_memory_gib=args.gpu_memory,
                          frames=args.frames, max_length=args.max_length, tuner=args.tuner,
                          global_batch=args.global_batch, max_micro_batch=args.max_micro_batch,
                          text_tokens=args.text_tokens, checkpointing=ckpt, headroom=args.headroom, objective="fastest",
                          stage=args.stage, length_group=args.length_group)
        plan = make_plan(req)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    name, line, recipe_notes = run_line(plan, args) if plan.fits else (plan.recipe_name, None, [])
    if args.json:
        print(json.dumps(plan_dict(plan, name, line), indent=1))
        return 0 if plan.fits else 1
    a = plan.arch
    p = a.params()
    print(f"{a.name}: {a.total_params() / 1e9:.2f} B parameters (vision {p['vision'] / 1e9:.2f} B, "
          f"projector {p['projector'] / 1e6:.0f} M, LLM {p['llm'] / 1e9:.2f} B)")
    print(f"{req.gpus_per_node} GPU(s) x {req.nodes} node(s), {req.gpu_memory_gib:g} GiB each; "
          f"{req.frames} frames -> {plan.memory.seq_len} tokens per sample")
    print()
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    print(f"recipe:        {name}  ({verdict})")
    if req.stage == "mpo":
        print("stage:         mpo (pairs: chosen + rejected sequences, reference forward"
              + (", frozen reference copy)" if plan.tuner == "full" else "; LoRA's reference is the base model)"))
    print(f"tuner:         {plan.tuner}" + (f" (rank {req.lora_rank}, {plan.memory.trainable_params / 1e6:.1f} M "
                                            "trainable)" if plan.tuner == "lora" else ""))
    print(f"deepspeed:     {plan.deepspeed or 'none (DDP / single GPU)'}")
    print(f"checkpointing: {plan.checkpointing}" + ("" if plan.checkpoint_layers >= plan.layers else
                                                     f" ({plan.layers - plan.checkpoint_layers} layers keep their "
                                                     "activations)"))
    print(f"batch:         per-device {plan.micro_batch} x {req.world} GPUs x grad-accum {plan.grad_accum} "
          f"= {plan.global_batch}")
    if plan.time:
        print(f"predicted:     {plan.memory.total / 2 ** 30:.1f} GiB per GPU, {plan.time.samples_per_s:.2f} samples/s "
              f"({plan.time.step_s:.1f} s per optimizer step, {plan.time.bound}-bound"
              f"{', compiled layers' if plan.compiled else ''})")
    if plan.runner_up:
        r = plan.runner_up
        print(f"runner-up:     {r.describe()}: {r.memory.total / 2 ** 30:.1f} GiB, {r.time.samples_per_s:.2f} samples/s")
        if plan.chosen_on_memory:
            print(f"               (predicted within {TIE * 100:g} % of each other: the plan takes the one with less memory)")
    print()
    print("predicted peak memory per GPU (GiB):")
    for label, value in breakdown_rows(plan.memory):
        print(f"  {label:38} {value:8.2f}")
    print(f"  {'budget (' + format(req.headroom, '.0%') + ' of the GPU)':38} {plan.budget_bytes / 2 ** 30:8.2f}")
    if plan.memory.host_offload:
        print(f"  {'CPU memory per node for the offload':38} {plan.memory.host_offload * req.gpus_per_node / 2 ** 30:8.2f}")
    print()
    print("settings tried (per-device batch 1, every layer checkpointed):")
    for tuner, zero, offload, value in plan.alternatives:
        print(f"  {tuner:5} {deepspeed_name(zero, offload) or 'no deepspeed':14} {value:8.2f} GiB")
    for note in plan.notes + recipe_notes:
        print(f"note: {note}")
    if line:
        print(f"\nrun: {line}")
        topo = f" --gpus {req.gpus_per_node}" + (f" --nodes {req.nodes}" if req.nodes > 1 else "")
        print(f"  (or: ivl3 train {name}{' model=' + args.model if not plan.exact_recipe else ''} --plan"
              f" --gpu-memory {req.gpu_memory_gib:g}{topo}, which plans the same on the launching machine)")
    return 0 if plan.fits else 1
