"""The sides ``gpu_train.py`` compares: how each trains (``Side``), what the planner picks for a GPU
(``plan_side``, applied by ``ivl3 train --plan``'s own function) and what it predicts for any side.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

SIDES = ("native", "ours", "ours1", "group", "plan", "plan80", "planx", "plang")
GROUP = "ivl3_length_group"  # the callback of the group/plang sides: micro-batches of similar length
PLAN_TEXT_TOKENS, PLAN_LABEL_TOKENS = 339, 61  # a sample here: 16 x 256 image tokens + 339 text, ~60 answer tokens


@dataclass
class Side:
    """How one side trains: data, batch split, workers, compiled layers, checkpointed LLM layers
    (None: ms-swift's default, all), our callbacks and their run settings, extra swift arguments."""

    rows: Path
    micro: int
    accum: int
    workers: int
    compiled: bool
    all_layers: bool
    callbacks: list
    callback_args: dict
    layers: object
    extra: list = field(default_factory=list)
    plan: object = None

    def same_as(self, other: "Side") -> bool:
        return (self.micro, self.accum, self.layers, self.callbacks, self.callback_args) == \
            (other.micro, other.accum, other.layers, other.callbacks, other.callback_args)

    def with_extra(self, extra: list, callback_args: dict) -> "Side":
        merged = {k: dict(v) for k, v in self.callback_args.items()}
        for k, v in callback_args.items():
            merged[k] = {**merged.get(k, {}), **v}
        return replace(self, extra=list(self.extra) + list(extra), callback_args=merged)


def planner_arch(arch: str, model_dir: Path):
    """The planner's view of the benchmark model: read from its config.json, as ``ivl3 plan DIR`` does."""
    from ivl3_plugin.recipe.arch import arch_from_config

    return arch_from_config(model_dir, name=f"InternVL3-{arch.upper()}")


def gpu_memory_gib() -> float:
    """This machine's first GPU, in GiB (a child process, so this one keeps no CUDA context for it)."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.get_device_properties(0).total_memory)"],
                         capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 2 ** 30


def plan_request(tuner: str, frames: int, gb: int, gpu_gib: float, max_length: int = 8192):
    from ivl3_plugin.recipe.plan import PlanRequest

    return PlanRequest(model="benchmark", gpus_per_node=1, gpu_memory_gib=gpu_gib, frames=frames, max_length=max_length,
                       tuner=tuner, global_batch=gb, max_micro_batch=None, text_tokens=PLAN_TEXT_TOKENS,
                       label_tokens=PLAN_LABEL_TOKENS, lora_rank=8, checkpointing="auto", objective="fastest")


def plan_side(arch, tuner: str, frames: int, gb: int, gpu_gib: float, rows: Path, workers: int,
              max_length: int = 8192) -> Side:
    """What ``ivl3 plan`` picks for one GPU of ``gpu_gib``, applied by ``ivl3 train --plan``'s own function."""
    from ivl3_plugin.recipe.plan import make_plan
    from ivl3_plugin.recipe.plan_apply import apply_plan
    from ivl3_plugin.settings import CALLBACK_ARGS

    plan = make_plan(plan_request(tuner, frames, gb, gpu_gib, max_length), arch)
    args = {"callbacks": []}
    apply_plan(args, plan)
    callbacks = [c for c in args.get("callbacks", []) if c != "ivl3_compile"]
    raw = (args.get("ENV") or {}).get(CALLBACK_ARGS.name)
    print(f"[plan {gpu_gib:.1f} GiB] {tuner}: micro-batch {plan.micro_batch} x {plan.grad_accum}, checkpointing "
          f"{plan.checkpointing}, predicted {plan.memory.total / 2 ** 30:.1f} GiB, "
          f"{plan.time.samples_per_s:.2f} samples/s" + (f"; runner-up: {plan.runner_up.describe()}"
                                                         if plan.runner_up else ""), flush=True)
    extra = ["--padding_side", args["padding_side"]] if "padding_side" in args else []
    return Side(rows, plan.micro_batch, plan.grad_accum, workers, plan.compiled, False, callbacks,
                json.loads(raw) if raw else {}, plan.checkpoint_layers, extra, plan)


def predict_side(arch, tuner: str, frames: int, st: Side, gb: int, max_length: int = 8192) -> dict:
    """The planner's memory and time for the setting a side runs (whatever chose it)."""
    from ivl3_plugin.recipe.memory import TrainSetup, estimate
    from ivl3_plugin.recipe.speed import step_time

    layers = arch.text.layers if st.layers is None else st.layers
    setup = TrainSetup(tuner=tuner, micro_batch=st.micro, frames=frames, text_tokens=PLAN_TEXT_TOKENS,
                       label_tokens=PLAN_LABEL_TOKENS, max_length=max_length, checkpoint_layers=layers, lora_rank=8,
                       compiled=st.compiled)
    t = step_time(arch, setup, st.accum, compiled=st.compiled)
    return {"peak_gib": estimate(arch, setup).total / 2 ** 30, "samples_per_s": t.samples_per_s,
            "checkpoint_layers": layers, "layers": arch.text.layers}

