"""``ivl3 plan``: which recipe, ZeRO stage and batch split fit these GPUs, and why (memory breakdown)."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="plan a fine-tune: recipe, ZeRO stage, per-device batch and predicted memory",
                       description="Predict peak GPU memory per rank and pick the cheapest setting that fits. "
                                   "GPU memory is in GiB as nvidia-smi shows it (80 for A100/H100 80GB, 139 for H200).")
    p.add_argument("model", help="model size (1B, 2B, 8B, 9B, 14B, 38B, 78B) or a model directory with config.json")
    p.add_argument("--gpus", "--gpus-per-node", dest="gpus", type=int, default=8, help="GPUs per node (default 8)")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU (default 80)")
    p.add_argument("--frames", type=int, default=16, help="frames per video sample (1 tile of 256 tokens each)")
    p.add_argument("--max-length", type=int, default=16384)
    p.add_argument("--tuner", choices=["full", "lora"], help="default: full if it fits, else LoRA")
    p.add_argument("--global-batch", type=int, default=128)
    p.add_argument("--max-micro-batch", type=int, default=4)
    p.add_argument("--text-tokens", type=int, default=256, help="prompt + answer tokens per sample")
    p.add_argument("--no-grad-checkpointing", action="store_true")
    p.add_argument("--headroom", type=float, default=0.9, help="share of GPU memory a plan may use (default 0.9)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def plan_dict(plan) -> dict:
    return {
        "model": plan.arch.name, "params": plan.arch.params(), "recipe": plan.recipe_name, "tuner": plan.tuner,
        "zero": plan.zero, "offload": plan.offload, "deepspeed": plan.deepspeed, "fits": plan.fits,
        "gpus_per_node": plan.request.gpus_per_node, "nodes": plan.request.nodes,
        "per_device_train_batch_size": plan.micro_batch, "gradient_accumulation_steps": plan.grad_accum,
        "global_batch": plan.global_batch, "seq_len": plan.memory.seq_len,
        "memory_gib": plan.memory.gib(), "budget_gib": plan.budget_bytes / 2 ** 30,
        "host_offload_gib_per_node": plan.memory.host_offload * plan.request.gpus_per_node / 2 ** 30,
        "alternatives": [dict(tuner=t, zero=z, offload=o, gib_at_batch_1=round(g, 2)) for t, z, o, g in plan.alternatives],
        "notes": plan.notes,
    }


def run(args) -> int:
    from . import UserError
    from ..recipe.plan import PlanRequest, breakdown_rows, make_plan

    try:
        req = PlanRequest(model=args.model, gpus_per_node=args.gpus, nodes=args.nodes, gpu_memory_gib=args.gpu_memory,
                          frames=args.frames, max_length=args.max_length, tuner=args.tuner,
                          global_batch=args.global_batch, max_micro_batch=args.max_micro_batch,
                          text_tokens=args.text_tokens, grad_checkpointing=not args.no_grad_checkpointing,
                          headroom=args.headroom)
        plan = make_plan(req)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(plan_dict(plan), indent=1))
        return 0 if plan.fits else 1
    a = plan.arch
    p = a.params()
    print(f"{a.name}: {a.total_params() / 1e9:.2f} B parameters (vision {p['vision'] / 1e9:.2f} B, "
          f"projector {p['projector'] / 1e6:.0f} M, LLM {p['llm'] / 1e9:.2f} B)")
    print(f"{req.gpus_per_node} GPU(s) x {req.nodes} node(s), {req.gpu_memory_gib:g} GiB each; "
          f"{req.frames} frames -> {plan.memory.seq_len} tokens per sample")
    print()
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    print(f"recipe:      {plan.recipe_name}  ({verdict})")
    print(f"tuner:       {plan.tuner}" + (f" (rank {req.lora_rank}, {plan.memory.trainable_params / 1e6:.1f} M "
                                          "trainable)" if plan.tuner == "lora" else ""))
    print(f"deepspeed:   {plan.deepspeed or 'none (DDP / single GPU)'}")
    print(f"batch:       per-device {plan.micro_batch} x {req.world} GPUs x grad-accum {plan.grad_accum} "
          f"= {plan.global_batch}")
    print()
    print("predicted peak memory per GPU (GiB):")
    for label, gib in breakdown_rows(plan.memory):
        print(f"  {label:38} {gib:8.2f}")
    print(f"  {'budget (' + format(req.headroom, '.0%') + ' of the GPU)':38} {plan.budget_bytes / 2 ** 30:8.2f}")
    if plan.memory.host_offload:
        print(f"  {'CPU memory per node for the offload':38} {plan.memory.host_offload * req.gpus_per_node / 2 ** 30:8.2f}")
    print()
    print("settings tried (per-device batch 1):")
    for tuner, zero, offload, gib in plan.alternatives:
        name = f"zero{zero}" + ("_offload" if offload else "") if zero else "no deepspeed"
        print(f"  {tuner:5} {name:14} {gib:8.2f} GiB")
    for note in plan.notes:
        print(f"note: {note}")
    if plan.fits:
        over = [f"per_device_train_batch_size={plan.micro_batch}", f"gradient_accumulation_steps={plan.grad_accum}",
                f"deepspeed={plan.deepspeed}" if plan.deepspeed else "deepspeed=null"]
        nodes = f" --nodes {req.nodes}" if req.nodes > 1 else ""
        print(f"\nrun: ivl3 train {plan.recipe_name} {' '.join(over)} --gpus {req.gpus_per_node}{nodes}")
    return 0 if plan.fits else 1
