"""LLaMA-Factory host adapter, launch: an ms-swift-style recipe as LLaMA-Factory arguments, and its argv.

LLaMA-Factory's own launcher re-execs ``torchrun …/launcher.py`` for multi-GPU runs, so
registrations made by importing something in the parent are lost.  We launch our module
:mod:`ivl3_plugin.hosts.llamafactory.run` instead (directly, or under ``torch.distributed.run``);
every process it starts registers, then calls ``llamafactory.train.tuner.run_exp``.
Nothing here imports llamafactory: ``ivl3 train --host llamafactory`` runs in the ms-swift
environment, which cannot hold llamafactory's pins, and points at the ``.venv-lf`` interpreter.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ...recipe.compile import CALLBACK_NAME as COMPILE_CALLBACK
from ...recipe.config import Recipe
from ...recipe.row_attention import CALLBACK_NAME as SKIP_PADDING_CALLBACK
from ...recipe.launch import DEFAULT_PORT, Launch, Topology, recipe_env
from ...settings import LLAMAFACTORY_PYTHON, home
from ...shared.atomic import write_text_atomic

log = logging.getLogger("ivl3_plugin.llamafactory")

RUN_MODULE = "ivl3_plugin.hosts.llamafactory.run"
SPEED_CALLBACKS = (COMPILE_CALLBACK, SKIP_PADDING_CALLBACK)  # ours, for ms-swift's loop: LF skips them
REPO = Path(__file__).resolve().parents[3]

# ms-swift recipe key -> LLaMA-Factory argument (same meaning)
SAME = ("template", "learning_rate", "lr_scheduler_type", "warmup_ratio", "max_steps", "num_train_epochs",
        "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
        "logging_steps", "save_steps", "save_strategy", "save_total_limit", "eval_strategy", "eval_steps",
        "seed", "output_dir", "report_to", "dataloader_num_workers", "weight_decay", "max_grad_norm",
        "lora_rank", "lora_alpha", "lora_dropout", "overwrite_output_dir", "run_name", "logging_dir", "save_only_model")
RENAMED = {"model": "model_name_or_path", "tuner_type": "finetuning_type", "train_type": "finetuning_type",
           "max_length": "cutoff_len", "freeze_vit": "freeze_vision_tower",
           "freeze_aligner": "freeze_multi_modal_projector", "freeze_llm": "freeze_language_model",
           "split_dataset_ratio": "val_size", "target_modules": "lora_target"}
# ms-swift launch plumbing with no LLaMA-Factory meaning: dropped without a word
SWIFT_ONLY = {"custom_register_path", "external_plugins", "check_model", "strict", "ENV", "model_type",
              "use_hf", "add_version", "dataset_num_proc", "load_from_cache_file", "max_pixels", "attn_impl",
              "padding_free", "packing", "eval_metric", "predict_with_generate", "metric_for_best_model",
              "padding_side"}  # padding_side: ms-swift's logits_to_keep needs it; LLaMA-Factory computes all logits
# LLaMA-Factory's own keys a user may pass as overrides
LF_NATIVE = {"stage", "do_train", "do_eval", "cutoff_len", "video_maxlen", "video_fps", "video_max_pixels",
             "video_min_pixels", "image_max_pixels", "preprocessing_num_workers", "overwrite_cache",
             "dataset_dir", "eval_dataset", "val_size", "bf16", "fp16", "pure_bf16", "trust_remote_code",
             "lora_target", "finetuning_type", "model_name_or_path", "deepspeed", "flash_attn",
             "disable_gradient_checkpointing", "plot_loss", "max_samples", "freeze_vision_tower",
             "freeze_multi_modal_projector", "freeze_language_model", "ddp_timeout", "use_cpu"}


def lf_python() -> str:
    """The interpreter that has llamafactory: the setting LLAMAFACTORY_PYTHON, the checkout's .venv-lf, or this one."""
    configured = LLAMAFACTORY_PYTHON.get()
    if configured:
        return str(configured)
    venv = REPO / ".venv-lf" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def _as_list(value) -> List[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _deepspeed_config(stage: str, out: Path) -> str:
    """A DeepSpeed JSON for ms-swift's ``zeroN`` names (LLaMA-Factory wants a file)."""
    n = int(stage[4])
    zero: Dict[str, Any] = {"stage": n, "overlap_comm": False, "contiguous_gradients": True}
    if stage.endswith("_offload"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if n == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if n == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    cfg = {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
           "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "zero_allow_untested_optimizer": True,
           "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}, "zero_optimization": zero}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ds_{stage}.json"
    write_text_atomic(path, json.dumps(cfg, indent=2) + "\n")
    return str(path)


def lf_args(recipe: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Translate an ms-swift-style recipe (plus overrides) into LLaMA-Factory training arguments."""
    merged = {**recipe, **(overrides or {})}
    if merged.get("rlhf_type"):  # MPO mixes DPO and BCO losses with weights, which LLaMA-Factory's dpo stage lacks
        raise ValueError(f"rlhf_type {merged['rlhf_type']!r}: preference (mpo) recipes run on ms-swift only "
                         "(`ivl3 train RECIPE` with the default host runs swift rlhf; docs/preference-training.md)")
    out: Dict[str, Any] = {"stage": "sft", "do_train": True, "finetuning_type": "lora", "lora_target": "all",
                           "trust_remote_code": False, "overwrite_cache": True, "preprocessing_num_workers": None}
    unknown = []
    for key, value in merged.items():
        if key in SAME or key in LF_NATIVE:
            out[key] = value
        elif key in RENAMED:
            out[RENAMED[key]] = value
        elif key == "dataset":
            out["dataset"] = _as_list(value)
        elif key == "val_dataset":
            out["eval_dataset"] = _as_list(value)
        elif key == "torch_dtype":
            out["bf16"] = value in ("bfloat16", "bf16")
            out["fp16"] = value in ("float16", "fp16")
        elif key == "gradient_checkpointing":
            out["disable_gradient_checkpointing"] = not _truthy(value)
        elif key == "deepspeed":
            out["deepspeed"] = value
        elif key == "callbacks":  # ms-swift trainer callbacks; ours only speed up ms-swift's loop
            rest = [c for c in _as_list(value) if c not in SPEED_CALLBACKS]
            if rest:
                unknown.append(f"callbacks ({', '.join(rest)})")
            elif value:
                log.warning("callbacks: %s: ms-swift trainer callbacks; LLaMA-Factory trains eager with its own "
                            "attention", ", ".join(_as_list(value)))
        elif key in SWIFT_ONLY:
            continue
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"recipe keys with no LLaMA-Factory meaning: {', '.join(sorted(unknown))} "
                         f"(drop them, or use LLaMA-Factory's own names: {', '.join(sorted(LF_NATIVE))})")
    for key in ("model_name_or_path", "dataset", "template", "output_dir"):
        if not out.get(key):
            raise ValueError(f"a LLaMA-Factory run needs {key!r} (ms-swift name: "
                             f"{next((k for k, v in RENAMED.items() if v == key), key)})")
    for key in ("save_strategy", "eval_strategy", "logging_strategy"):
        if out.get(key) is False:  # YAML 1.1 reads an unquoted `no` as False
            out[key] = "no"
    if isinstance(out.get("lora_target"), list):
        out["lora_target"] = ",".join(out["lora_target"])
    if out.get("finetuning_type") not in ("full", "lora", "freeze"):
        raise ValueError(f"tuner_type {out.get('finetuning_type')!r}: LLaMA-Factory runs full, lora or freeze")
    out["output_dir"] = str(Path(os.path.expanduser(str(out["output_dir"]))).resolve())
    # eval names refer to the val split of the same datasets
    out["eval_dataset"] = [e if e.endswith("-val") else f"{e}-val" for e in out.get("eval_dataset", [])]
    if not out["eval_dataset"]:
        out.pop("eval_dataset")
    ds = out.get("deepspeed")
    if isinstance(ds, str) and ds.startswith("zero"):
        out["deepspeed"] = _deepspeed_config(ds, home() / "llamafactory")  # same content every time: shared
    return {k: v for k, v in out.items() if v is not None}


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def to_cli(args: Dict[str, Any]) -> List[str]:
    """``--key value`` pairs as LLaMA-Factory's HfArgumentParser reads them (lists comma-joined)."""
    argv = []
    for key, value in args.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        argv += [f"--{key}", str(value)]
    return argv


TOPOLOGY_KEYS = ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port", "force_torchrun")


def launch_argv(recipe: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None,
                topology: Optional[Topology] = None) -> Tuple[List[str], Dict[str, str]]:
    """argv + extra env for one LLaMA-Factory training run of an ms-swift-style ``recipe``.

    One process: ``python -m ivl3_plugin.hosts.llamafactory.run --key value …``.  Several
    processes (``topology``, or the keys ``nproc_per_node``/``nnodes``/``node_rank``/``master_addr``/
    ``master_port``/``force_torchrun`` among the overrides) run under ``python -m torch.distributed.run``
    instead of LLaMA-Factory's own torchrun re-exec, so every rank imports our registrations.
    """
    merged = {**recipe, **(overrides or {})}
    topo = {k: merged.pop(k) for k in TOPOLOGY_KEYS if k in merged}
    if topology is not None:
        topo.update(nproc_per_node=topology.gpus_per_node, nnodes=topology.nodes, node_rank=topology.node_rank,
                    master_port=topology.master_port)
        if topology.master_addr:
            topo["master_addr"] = topology.master_addr
    env = {k: str(v) for k, v in (merged.pop("ENV", None) or {}).items()}
    args = lf_args(merged)
    python = lf_python()
    nproc, nnodes = int(topo.get("nproc_per_node", 1)), int(topo.get("nnodes", 1))
    module = ["-m", RUN_MODULE]
    if nproc > 1 or nnodes > 1 or _truthy(topo.get("force_torchrun", False)):
        dist = ["--nproc_per_node", str(nproc), "--nnodes", str(nnodes),
                "--node_rank", str(topo.get("node_rank", 0)),
                "--master_addr", str(topo.get("master_addr", "127.0.0.1")),
                "--master_port", str(topo.get("master_port", DEFAULT_PORT))]
        argv = [python, "-m", "torch.distributed.run", *dist, *module, *to_cli(args)]
    else:
        argv = [python, *module, *to_cli(args)]
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return argv, env


def training_launch(recipe: Recipe, topology: Topology) -> Launch:
    """The :class:`Launch` of a prepared recipe on ``topology`` (the recipe's ENV block and CPU flag kept)."""
    argv, env = launch_argv(recipe.args, topology=topology)
    return Launch(argv, {**recipe_env(recipe), **env}, [], recipe)
