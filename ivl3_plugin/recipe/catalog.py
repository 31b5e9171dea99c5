"""The shipped recipes, as data: official InternVL3 settings + what the planner says fits.

``python -m ivl3_plugin.recipe.catalog recipes/`` (re)writes ``recipes/*.yaml``;
a test checks the shipped files still match, so the files and this table
never drift apart.

Full fine-tuning follows the official ``internvl_chat/shell/internvl3.0/2nd_finetune/
internvl3_<size>_dynamic_res_2nd_finetune_full.sh`` scripts: global batch 128,
lr 1e-5 (1B) / 2e-5 (larger), weight decay 0.05, warmup 0.03, cosine, 1 epoch,
ViT frozen, LLM and projector trained, max_dynamic_patch 12, max_seq_length
16384, gradient checkpointing, ZeRO-1 up to 14B and ZeRO-3 for 38B/78B,
8 GPUs (16 for 38B, 32 for 78B), per-device batch 4 (2 for 38B/78B).
Where the planner finds the official stage or per-device batch does not fit
16-frame videos on 80 GiB GPUs, the recipe moves to the next stage / a smaller
per-device batch (more accumulation, same global batch) and says so.
InternVL3 ships no LoRA script: LoRA recipes use the official InternVL LoRA
settings (``--use_llm_lora 16``, LLM, projector and ViT frozen; alpha = 2 x rank)
with ms-swift's LoRA learning rate 1e-4, on fewer GPUs.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ..shared.layout import DEFAULT_NUM_FRAMES
from .config import Recipe, dump_recipe, recipe_name
from .mpo import MPO_ARGS, MPO_FULL_SIZES, MPO_LR, OFFICIAL_MPO_URL, PAIRS_PLACEHOLDER
from .plan import PlanRequest, default_stages, make_plan
from .plan_apply import speed_callbacks

OFFICIAL_URL = ("https://github.com/OpenGVLab/InternVL/blob/main/internvl_chat/shell/internvl3.0/2nd_finetune/"
                "internvl3_{size}_dynamic_res_2nd_finetune_full.sh")
GPU_MEMORY_GIB = 80
# a real recipe trains the user's data, never the bundled demo by accident: `ivl3 train` refuses this until
# dataset=… is given (hosts/training.py), and plain `swift sft recipe.yaml` stops on it at once
DATASET_PLACEHOLDER = "<your converted dataset: dataset=DIR/swift/train.jsonl>"
FRAMES = DEFAULT_NUM_FRAMES
MAX_LENGTH = 16384


@dataclass(frozen=True)
class Official:
    size: str
    lr: float
    gpus: int
    per_device: int
    zero: int


OFFICIAL: Dict[str, Official] = {
    "1B": Official("1B", 1e-5, 8, 4, 1),
    "2B": Official("2B", 2e-5, 8, 4, 1),
    "8B": Official("8B", 2e-5, 8, 4, 1),
    "9B": Official("9B", 2e-5, 8, 4, 1),
    "14B": Official("14B", 2e-5, 8, 4, 1),
    "38B": Official("38B", 2e-5, 16, 2, 3),
    "78B": Official("78B", 2e-5, 32, 2, 3),
}
LORA_GPUS = {"1B": 1, "2B": 1, "8B": 2, "9B": 2, "14B": 4, "38B": 8, "78B": 8}
LORA_LR = 1e-4


def _stages(first: int, world: int, tuner: str):
    """The planner's stage order (cheapest first), starting no lower than the official script's stage."""
    return [(s, o) for s, o in default_stages(tuner, world) if o or tuner == "lora" or world == 1 or s >= first]


# CPU-offload variants: fewer GPUs, paid for in host memory (name, size, tuner, GPUs, stage)
OFFLOAD = [("internvl3-14b-full-offload", "14B", "full", 1, 2), ("internvl3-38b-full-offload", "38B", "full", 8, 3),
           ("internvl3-78b-full-offload", "78B", "full", 16, 3), ("internvl3-78b-lora-offload", "78B", "lora", 4, 3)]


def build(size: str, tuner: str, gpus: Optional[int] = None, offload_stage: Optional[int] = None,
          stage: str = "sft") -> Recipe:
    off = OFFICIAL[size]
    gpus = gpus or (off.gpus if tuner == "full" else LORA_GPUS[size])
    per_node = min(gpus, 8)
    nodes = max(1, gpus // 8)
    stages = [(offload_stage, True)] if offload_stage else _stages(off.zero, gpus, tuner)
    if stage == "mpo":  # no CPU offload for the preference recipes: their reference forward doubles its traffic
        stages = [(z, o) for z, o in stages if not o]
    req = PlanRequest(model=size, gpus_per_node=per_node, nodes=nodes, gpu_memory_gib=GPU_MEMORY_GIB,
                      frames=FRAMES, max_length=MAX_LENGTH, tuner=tuner, global_batch=128,
                      max_micro_batch=off.per_device, stages=stages, stage=stage)
    plan = make_plan(req)
    if not plan.fits:
        raise ValueError(f"{size} {tuner}: no setting fits {gpus} x {GPU_MEMORY_GIB} GiB: {plan.notes}")
    deviations: List[str] = []
    if offload_stage:
        deviations.append(f"CPU offload (ZeRO-{offload_stage}) to run on {gpus} GPU(s): needs about "
                          f"{plan.memory.host_offload * per_node / 2**30:.0f} GiB of host memory per node")
    elif tuner == "full":
        if plan.zero != off.zero:
            deviations.append(f"ZeRO-{plan.zero}{' with CPU offload' if plan.offload else ''} instead of the "
                              f"official ZeRO-{off.zero}: ZeRO-{off.zero} needs more than {GPU_MEMORY_GIB} GiB "
                              f"per GPU by the planner")
        if plan.micro_batch != off.per_device:
            deviations.append(f"per-device batch {plan.micro_batch} instead of {off.per_device} (16-frame videos "
                              f"are ~4.3k tokens each); gradient accumulation keeps the global batch at 128")
    low = size.lower()
    args = {
        "model": f"OpenGVLab/InternVL3-{size}",
        "template": "ivl3_video",
        "custom_register_path": ["ivl3_plugin"],
        "dataset": [DATASET_PLACEHOLDER],
        "split_dataset_ratio": 0.0,
        "tuner_type": tuner,
        **(MPO_ARGS if stage == "mpo" else {}),
        "freeze_vit": True,
        "freeze_aligner": tuner == "lora",
        "freeze_llm": False,
    }
    if tuner == "lora":
        args.update(lora_rank=16, lora_alpha=32, lora_dropout=0.05, target_modules=["all-linear"])
    args.update({
        "torch_dtype": "bfloat16",
        "per_device_train_batch_size": plan.micro_batch,
        "gradient_accumulation_steps": plan.grad_accum,
        # left padding: every answer ends at the last position, so ms-swift's logits_to_keep keeps the answers
        # only; right padding keeps logits from a batch's earliest answer on, i.e. the longer clips' frames
        **({"padding_side": "left"} if stage == "sft" else {}),
        "learning_rate": MPO_LR[tuner] if stage == "mpo" else off.lr if tuner == "full" else LORA_LR,
        "weight_decay": 0.05,
        "warmup_ratio": 0.03,
        "lr_scheduler_type": "cosine",
        "num_train_epochs": 1,
        "max_length": MAX_LENGTH,
        "gradient_checkpointing": True,
    })
    if plan.deepspeed:
        args["deepspeed"] = plan.deepspeed
    callbacks = speed_callbacks(plan)  # ivl3_compile (no DeepSpeed, ZeRO-1; swift sft), else ivl3_skip_padding
    if callbacks:
        args["callbacks"] = callbacks
    args.update({
        "save_strategy": "steps", "save_steps": 200, "save_total_limit": 1, "logging_steps": 1,
        "eval_strategy": "no", "dataloader_num_workers": 4, "strict": True,
        "output_dir": f"output/{recipe_name(size, tuner, stage)}",
    })
    if stage == "mpo":
        args["dataset"] = [PAIRS_PLACEHOLDER]
    meta = {
        "model_size": size, "tuner": tuner, "gpus_per_node": per_node, "nodes": nodes,
        "gpu_memory_gb": GPU_MEMORY_GIB, "frames": FRAMES, "global_batch": plan.global_batch,
        "source": OFFICIAL_URL.format(size=low) if tuner == "full" else
        "InternVL LoRA settings (--use_llm_lora 16, frozen LLM/projector/ViT) + ms-swift LoRA lr 1e-4",
        "description": f"InternVL3-{size} {'full fine-tuning (LLM + projector)' if tuner == 'full' else 'LoRA r16'}"
                       f", planned peak {plan.memory.total / 2**30:.1f} GiB per GPU",
        "stage": stage,
    }
    if stage == "mpo":
        lora_note = " (LoRA: lr 1e-5, see ivl3_plugin/recipe/mpo.py)"
        meta["source"] = OFFICIAL_MPO_URL + (lora_note if tuner == "lora" else "")
        kind = "full, frozen reference copy" if tuner == "full" else "LoRA r16, reference = base model"
        meta["description"] = (f"InternVL3-{size} MPO preference training ({kind}), planned peak "
                               f"{plan.memory.total / 2**30:.1f} GiB per GPU")
    if plan.offload:
        meta["host_memory_gb"] = int(round(plan.memory.host_offload * per_node / 2**30 + 0.5))
        meta["description"] += f", CPU offload: ~{meta['host_memory_gb']} GiB host memory per node"
        args["output_dir"] += "-offload"
    recipe = Recipe(None, args, meta)
    recipe.deviations = deviations  # type: ignore[attr-defined]
    return recipe


def header(recipe: Recipe) -> str:
    m = recipe.meta
    stage = m.get("stage", "sft")
    name = recipe_name(m["model_size"], m["tuner"], stage) + ("-offload" if "host_memory_gb" in m else "")
    what = "MPO preference training" if stage == "mpo" else "fine-tuning"
    lines = [f"InternVL3-{m['model_size']} {m['tuner']} {what} for video summarisation (ivl3-plugin recipe).",
             (f"Run: ivl3 train {name}{' dataset=PAIRS.jsonl' if stage == 'mpo' else ''}   "
              f"(or: swift {'rlhf' if stage == 'mpo' else 'sft'} <this file>)"),
             f"Assumes {m['gpus_per_node']} GPU(s) per node x {m['nodes']} node(s) of {m['gpu_memory_gb']} GiB, "
             f"{m['frames']} frames per video.",
             "Lines starting with '#@ivl3' are ivl3 metadata; ms-swift reads them as comments.",
             "Generated by: python -m ivl3_plugin.recipe.catalog recipes/"]
    if stage == "mpo":
        lines.append("MPO losses and lr: docs/preference-training.md and ivl3_plugin/recipe/mpo.py.")
    for d in getattr(recipe, "deviations", []):
        lines.append(f"Deviation from the official script: {d}.")
    return "\n".join(lines)


TINY_CPU = Recipe(None, {
    "model": "ivl3-tiny",
    "template": "ivl3_video",
    "custom_register_path": ["ivl3_plugin"],
    "dataset": ["ivl3-demo"],
    "split_dataset_ratio": 0.0,
    "tuner_type": "full",
    "freeze_vit": True,
    "freeze_aligner": False,
    "torch_dtype": "float32",
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 3.0e-3,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.0,
    "max_steps": 800,
    "gradient_checkpointing": False,
    "save_strategy": "steps", "save_steps": 800, "save_total_limit": 1, "save_only_model": True, "logging_steps": 1,
    "eval_strategy": "no", "dataloader_num_workers": 0, "report_to": "none", "seed": 0, "strict": True,
    "output_dir": "output/tiny-cpu",
}, {"model_size": "tiny", "tuner": "full", "gpus_per_node": 1, "nodes": 1, "cpu": True, "global_batch": 4, "frames": 2,
    "description": "the tiny offline InternVL3 on CPU (tests and the demo); model 'ivl3-tiny' is built on first use",
    "stage": "sft"})
TINY_HEADER = ("Tiny InternVL3 on CPU: the same pipeline as the real recipes, in seconds per step.\n"
               "Run: ivl3 train tiny-cpu max_steps=6   ('ivl3-tiny' is resolved to $IVL3_HOME/tiny-internvl3,\n"
               "built on first use; with plain swift pass --model <dir of `ivl3 tiny-model`>).\n"
               "The demo's settings (docs/demo.md): projector trained (ms-swift freezes it by default), ViT frozen,\n"
               "2 frames x 800 steps at cosine LR 3e-3: the held-out videos' colour, shape and direction read right.")


TINY_CPU_LORA = Recipe(None, {
    **{k: v for k, v in TINY_CPU.args.items() if k not in ("tuner_type", "output_dir", "max_steps", "save_steps",
                                                         "learning_rate", "freeze_vit", "freeze_aligner")},
    "tuner_type": "lora", "lora_rank": 8, "lora_alpha": 32, "target_modules": ["all-linear"],
    "learning_rate": 1.0e-3, "lr_scheduler_type": "constant", "max_steps": 20, "save_steps": 20,
    "output_dir": "output/tiny-cpu-lora",
}, {**TINY_CPU.meta, "tuner": "lora",
    "description": "the tiny offline InternVL3 on CPU, LoRA: the LoRA path of a real recipe in seconds (tests)"})
TINY_LORA_HEADER = ("Tiny InternVL3 on CPU, LoRA r8: the LoRA path of the real recipes (adapters, then `ivl3 predict`\n"
                    "and `ivl3 export`), in seconds per step.\n"
                    "Run: ivl3 train tiny-cpu-lora   ('ivl3-tiny' is built on first use; model=DIR trains your folder).")


TINY_CPU_MPO = Recipe(None, {
    **{k: v for k, v in TINY_CPU_LORA.args.items() if k != "output_dir"},
    "dataset": [PAIRS_PLACEHOLDER], **MPO_ARGS, "learning_rate": 1.0e-3, "output_dir": "output/tiny-cpu-mpo",
}, {**TINY_CPU_LORA.meta, "stage": "mpo",
    "description": "the tiny offline InternVL3 on CPU, LoRA MPO (swift rlhf): the preference path in seconds (tests)"})
TINY_MPO_HEADER = ("Tiny InternVL3 on CPU, LoRA r8 MPO: the preference-training path of the real -mpo recipes\n"
                   "(swift rlhf --rlhf_type dpo, MPO's losses) in seconds per step. lr 1e-3: the tiny model\n"
                   "needs it to move in 20 steps; the real recipes use InternVL's 5e-6 (full) / 1e-5 (LoRA).\n"
                   "Run: ivl3 train tiny-cpu-mpo dataset=PAIRS.jsonl   ('ivl3-tiny' is built on first use).")


def all_recipes() -> Dict[str, Recipe]:
    out = {recipe_name(size, tuner): build(size, tuner) for size in OFFICIAL for tuner in ("full", "lora")}
    for name, size, tuner, gpus, stage in OFFLOAD:
        out[name] = build(size, tuner, gpus, stage)
    for size in OFFICIAL:
        out[recipe_name(size, "lora", "mpo")] = build(size, "lora", stage="mpo")
    for size in MPO_FULL_SIZES:
        out[recipe_name(size, "full", "mpo")] = build(size, "full", stage="mpo")
    out["tiny-cpu"] = TINY_CPU
    out["tiny-cpu-lora"] = TINY_CPU_LORA
    out["tiny-cpu-mpo"] = TINY_CPU_MPO
    return out


def render(name: str, recipe: Recipe) -> str:
    headers = {"tiny-cpu": TINY_HEADER, "tiny-cpu-lora": TINY_LORA_HEADER, "tiny-cpu-mpo": TINY_MPO_HEADER}
    return dump_recipe(recipe, headers[name] if name in headers else header(recipe))


def write_all(folder: Path) -> List[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, recipe in all_recipes().items():
        path = folder / f"{name}.yaml"
        path.write_text(render(name, recipe))
        written.append(path)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "recipes")
    for path in write_all(folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
