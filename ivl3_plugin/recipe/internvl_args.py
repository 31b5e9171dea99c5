"""Official InternVL fine-tuning script arguments -> an ivl3 recipe (for users migrating from those scripts).

``internvl_chat_finetune.py`` flags map onto ms-swift arguments; flags with no
ms-swift meaning for our video pipeline (``--conv_style``, ``--meta_path``,
``--ps_version`` ...) are reported back rather than silently dropped.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Dict, List, Tuple

from .config import Recipe, RecipeError, set_template_args

TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}

# InternVL flag -> ms-swift argument, with a value converter
DIRECT = {
    "model_name_or_path": ("model", str),
    "output_dir": ("output_dir", str),
    "learning_rate": ("learning_rate", float),
    "weight_decay": ("weight_decay", float),
    "warmup_ratio": ("warmup_ratio", float),
    "warmup_steps": ("warmup_steps", int),
    "lr_scheduler_type": ("lr_scheduler_type", str),
    "num_train_epochs": ("num_train_epochs", float),
    "max_steps": ("max_steps", int),
    "per_device_train_batch_size": ("per_device_train_batch_size", int),
    "gradient_accumulation_steps": ("gradient_accumulation_steps", int),
    "max_seq_length": ("max_length", int),
    "save_steps": ("save_steps", int),
    "save_strategy": ("save_strategy", str),
    "save_total_limit": ("save_total_limit", int),
    "logging_steps": ("logging_steps", int),
    "dataloader_num_workers": ("dataloader_num_workers", int),
    "seed": ("seed", int),
    "report_to": ("report_to", str),
    "evaluation_strategy": ("eval_strategy", str),
    "eval_strategy": ("eval_strategy", str),
    "max_grad_norm": ("max_grad_norm", float),
}
BOOL_FREEZE = {"freeze_backbone": "freeze_vit", "freeze_llm": "freeze_llm", "freeze_mlp": "freeze_aligner"}
IGNORED = {"conv_style", "use_fast_tokenizer", "meta_path", "overwrite_output_dir", "force_image_size",
           "down_sample_ratio", "drop_path_rate", "vision_select_layer", "do_train", "group_by_length",
           "dynamic_image_size", "use_thumbnail", "ps_version", "use_packed_ds", "min_dynamic_patch",
           "bf16", "fp16", "nnodes", "node_rank", "master_addr", "nproc_per_node", "master_port"}


def _bool(flag: str, raw: str) -> bool:
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise RecipeError(f"--{flag}: expected True or False, got {raw!r}")


def _pairs(argv: List[str]) -> List[Tuple[str, str]]:
    """``--flag value`` / ``--flag=value`` pairs; a flag followed by another flag means True."""
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise RecipeError(f"unexpected argument {tok!r}: expected --flag value pairs")
        if "=" in tok:
            flag, value = tok[2:].split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            flag, value = tok[2:], argv[i + 1]
            i += 2
        else:
            flag, value = tok[2:], "True"
            i += 1
        out.append((flag, value))
    return out


def _deepspeed(value: str) -> str:
    """``zero_stage1_config.json`` / ``zero_stage3_config_100b.json`` -> ms-swift's named config."""
    name = Path(value).name.lower()
    m = re.search(r"(?:zero_?stage|zero)[_-]?([0-3])", name)
    if not m:
        return value
    return f"zero{m.group(1)}" + ("_offload" if "offload" in name else "")


def from_internvl_args(argv: List[str], dataset: str = "ivl3-demo") -> Tuple[Recipe, List[str]]:
    """Translate InternVL script flags into a recipe; returns it and notes about dropped flags."""
    if len(argv) == 1 and " " in argv[0]:
        argv = shlex.split(argv[0].replace("\\\n", " "))
    args: Dict[str, Any] = {"model": None, "template": "ivl3_video", "custom_register_path": ["ivl3_plugin"],
                            "dataset": [dataset], "tuner_type": "full", "torch_dtype": "bfloat16",
                            "freeze_vit": True, "freeze_aligner": False, "freeze_llm": False,
                            "padding_side": "left"}  # answer-only logits at micro-batch > 1 (docs/recipes.md)
    notes: List[str] = []
    llm_lora = vit_lora = 0
    max_tiles_image = None
    for flag, value in _pairs(argv):
        if flag in DIRECT:
            key, conv = DIRECT[flag]
            try:
                args[key] = conv(value)
            except ValueError:
                raise RecipeError(f"--{flag}: expected {conv.__name__}, got {value!r}") from None
        elif flag in BOOL_FREEZE:
            args[BOOL_FREEZE[flag]] = _bool(flag, value)
        elif flag == "use_llm_lora":
            llm_lora = int(value)
        elif flag == "use_backbone_lora":
            vit_lora = int(value)
        elif flag == "max_dynamic_patch":
            max_tiles_image = int(value)
        elif flag == "deepspeed":
            args["deepspeed"] = _deepspeed(value)
        elif flag == "grad_checkpoint":
            args["gradient_checkpointing"] = _bool(flag, value)
        elif flag in IGNORED:
            notes.append(f"--{flag} {value}: no ms-swift equivalent needed (handled by the ivl3_video template or "
                         "the launcher)")
        else:
            notes.append(f"--{flag} {value}: not translated; add it as an ms-swift argument if you need it")
    if not args["model"]:
        raise RecipeError("--model_name_or_path is required")
    if max_tiles_image is not None:  # a run setting of the recipe's template, scoped to it by name
        set_template_args(args, {"max_tiles_image": max_tiles_image})
    rank = llm_lora or vit_lora
    if rank:
        args.update(tuner_type="lora", lora_rank=rank, lora_alpha=2 * rank)  # InternVL's wrap_*_lora: alpha 2r
        args["freeze_llm"] = not llm_lora
        args["freeze_vit"] = not vit_lora
        if llm_lora and vit_lora and llm_lora != vit_lora:
            notes.append(f"LoRA ranks differ (LLM {llm_lora}, ViT {vit_lora}); ms-swift uses one rank: {rank}")
        args["target_modules"] = ["all-linear"]
    elif args["freeze_llm"] and args["freeze_vit"] and args["freeze_aligner"]:
        raise RecipeError("--freeze_llm, --freeze_backbone and --freeze_mlp are all True and no LoRA is set: "
                          "nothing would train")
    meta: Dict[str, Any] = {"tuner": args["tuner_type"], "source": "ivl3 recipe from-internvl-args"}
    m = re.search(r"InternVL3-(\d+B)", str(args["model"]), re.I)
    if m:
        meta["model_size"] = m.group(1).upper()
    return Recipe(None, {k: v for k, v in args.items() if v is not None}, meta), notes
