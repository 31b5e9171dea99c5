"""LLaMA-Factory host adapter: our registries in LLaMA-Factory's module registries, and its launch.

LLaMA-Factory 0.9.5 has no plugin entry points; it keeps module-level
registries instead: ``llamafactory.data.template.TEMPLATES`` (filled by
``register_template``, which refuses an existing name),
``llamafactory.data.mm_plugin.PLUGINS`` (``register_mm_plugin``) and a
``dataset_info.json`` in ``dataset_dir``.  :func:`install` fills them from
every loaded ivl3 plugin.

Its own launcher re-execs ``torchrun …/launcher.py`` for multi-GPU runs, so
registrations made by importing something in the parent are lost.  We launch
:mod:`ivl3_plugin.hosts.llamafactory_launch` instead (directly, or under
``torch.distributed.run``); every process it starts registers, then calls
``llamafactory.train.tuner.run_exp``.

Nothing here imports llamafactory at module import: :func:`launch_argv` runs
in the ms-swift environment (``ivl3 train --host llamafactory``), which cannot
hold llamafactory's pins; it points at the ``.venv-lf`` interpreter.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..recipe.compile import CALLBACK_NAME as COMPILE_CALLBACK

log = logging.getLogger("ivl3_plugin.llamafactory")

MM_PLUGIN = "ivl3_video"          # our multimodal plugin's name in LLaMA-Factory's PLUGINS
DATA_DIR_NAME = "ivl3_lf_data"    # generated dataset_dir under output_dir
PYTHON_ENV = "IVL3_LLAMAFACTORY_PYTHON"
REPO = Path(__file__).resolve().parents[2]

_lock = threading.Lock()
_registered: set = set()


# ------------------------------------------------------------------ registration (llamafactory env only)

def install(plugins=None) -> List[str]:
    """Register our multimodal plugin and every template; idempotent.  Returns the template names."""
    from llamafactory.data import mm_plugin as lf_mm
    from llamafactory.data import template as lf_template

    from .llamafactory_mm import Ivl3VideoPlugin, register_spec

    if plugins is None:
        from ..plugins import get_plugins

        plugins = get_plugins()
    with _lock:
        for err in plugins.errors:
            log.warning("%s", err)
        current = lf_mm.PLUGINS.get(MM_PLUGIN)
        if current is None:
            lf_mm.register_mm_plugin(MM_PLUGIN, Ivl3VideoPlugin)
        elif current is not Ivl3VideoPlugin:
            raise RuntimeError(f"LLaMA-Factory already has a multimodal plugin named {MM_PLUGIN!r} ({current!r})")
        names = []
        for entry in plugins.templates:
            name = entry.name
            if name not in _registered:
                if name in lf_template.TEMPLATES:
                    raise RuntimeError(
                        f"template {name!r} (from ivl3 plugin {entry.plugin!r}) clashes with LLaMA-Factory's own "
                        f"template of that name; rename it or block the plugin with IVL3_BLOCK_PLUGINS")
                register_spec(entry.obj.with_env(), name)
                _registered.add(name)
            names.append(name)
        return names


# ------------------------------------------------------------------ datasets (no llamafactory import)

def split_of(key: str, plugins=None) -> Tuple[str, str]:
    """``NAME`` -> (NAME, "train"); ``NAME-val`` -> (NAME, "val") when NAME is known or a folder."""
    base, _, split = key.rpartition("-")
    if base and split in ("train", "val", "test") and _known(base, plugins):
        return base, split
    return key, "train"


def _known(name: str, plugins) -> bool:
    return name in _datasets(plugins) or (Path(name).expanduser() / "llamafactory").is_dir()


def _datasets(plugins):
    if plugins is None:
        from ..plugins import get_plugins

        plugins = get_plugins()
    return plugins.datasets


def lf_entry(key: str, plugins=None) -> Dict[str, Any]:
    """The ``dataset_info.json`` entry for one dataset key (a registered name or a converted folder)."""
    base, split = split_of(key, plugins)
    registry = _datasets(plugins)
    folder = Path(registry.get(base).path) if base in registry else Path(base).expanduser()
    info_path = folder / "llamafactory" / "dataset_info.json"
    if not info_path.is_file():
        hint = f"ivl3 convert … -o {folder} --formats llamafactory"
        if base not in registry and not folder.is_dir():
            known = ", ".join(registry.names()) or "none"
            raise ValueError(f"dataset {key!r} is neither a registered dataset (known: {known}) nor a converted folder")
        raise ValueError(f"dataset {key!r}: {info_path} is missing; convert it first ({hint})")
    info = json.loads(info_path.read_text())
    entry = info.get(f"ivl3_{split}")
    if entry is None:
        raise ValueError(f"dataset {key!r}: {info_path} has no split {split!r} (has {sorted(info)})")
    entry = dict(entry)
    entry["file_name"] = str((info_path.parent / entry["file_name"]).resolve())
    if not Path(entry["file_name"]).is_file():
        raise ValueError(f"dataset {key!r}: {entry['file_name']} does not exist")
    return entry


def write_dataset_info(dataset_dir: Path, keys: List[str], base_dir: Optional[Path] = None,
                       plugins=None) -> Path:
    """Write ``dataset_dir/dataset_info.json`` holding ``keys`` (plus ``base_dir``'s own entries).

    Atomic (every rank writes the same content), so torchrun ranks may race safely.
    """
    info: Dict[str, Any] = {}
    if base_dir is not None and (Path(base_dir) / "dataset_info.json").is_file():
        for name, entry in json.loads((Path(base_dir) / "dataset_info.json").read_text()).items():
            entry = dict(entry)
            if "file_name" in entry:
                entry["file_name"] = str((Path(base_dir) / entry["file_name"]).resolve())
            info[name] = entry
    for key in keys:
        if key not in info:
            info[key] = lf_entry(key, plugins)
    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    target = dataset_dir / "dataset_info.json"
    tmp = target.with_name(f".dataset_info.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return target


# ------------------------------------------------------------------ launch (runs in the ms-swift env too)

# ms-swift recipe key -> LLaMA-Factory argument (same meaning)
SAME = ("template", "learning_rate", "lr_scheduler_type", "warmup_ratio", "max_steps", "num_train_epochs",
        "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
        "logging_steps", "save_steps", "save_strategy", "save_total_limit", "eval_strategy", "eval_steps",
        "seed", "output_dir", "report_to", "dataloader_num_workers", "weight_decay", "max_grad_norm",
        "lora_rank", "lora_alpha", "lora_dropout", "overwrite_output_dir", "run_name", "logging_dir")
RENAMED = {"model": "model_name_or_path", "tuner_type": "finetuning_type", "train_type": "finetuning_type",
           "max_length": "cutoff_len", "freeze_vit": "freeze_vision_tower",
           "freeze_aligner": "freeze_multi_modal_projector", "freeze_llm": "freeze_language_model",
           "split_dataset_ratio": "val_size", "target_modules": "lora_target"}
# ms-swift launch plumbing with no LLaMA-Factory meaning: dropped without a word
SWIFT_ONLY = {"custom_register_path", "external_plugins", "check_model", "strict", "ENV", "model_type",
              "use_hf", "add_version", "dataset_num_proc", "load_from_cache_file", "max_pixels", "attn_impl",
              "padding_free", "packing", "eval_metric", "predict_with_generate", "metric_for_best_model"}
# LLaMA-Factory's own keys a user may pass as overrides
LF_NATIVE = {"stage", "do_train", "do_eval", "cutoff_len", "video_maxlen", "video_fps", "video_max_pixels",
             "video_min_pixels", "image_max_pixels", "preprocessing_num_workers", "overwrite_cache",
             "dataset_dir", "eval_dataset", "val_size", "bf16", "fp16", "pure_bf16", "trust_remote_code",
             "lora_target", "finetuning_type", "model_name_or_path", "deepspeed", "flash_attn",
             "disable_gradient_checkpointing", "plot_loss", "max_samples", "freeze_vision_tower",
             "freeze_multi_modal_projector", "freeze_language_model", "ddp_timeout", "use_cpu"}


def lf_python() -> str:
    """The interpreter that has llamafactory: $IVL3_LLAMAFACTORY_PYTHON, the repo's .venv-lf, or this one."""
    if os.environ.get(PYTHON_ENV):
        return os.environ[PYTHON_ENV]
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
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return str(path)


def lf_args(recipe: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Translate an ms-swift-style recipe (plus overrides) into LLaMA-Factory training arguments."""
    merged = {**recipe, **(overrides or {})}
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
        elif key == "callbacks":  # ms-swift trainer callbacks; ours only speeds up ms-swift's loop
            rest = [c for c in _as_list(value) if c != COMPILE_CALLBACK]
            if rest:
                unknown.append(f"callbacks ({', '.join(rest)})")
            elif value:
                log.warning("callbacks: %s is an ms-swift trainer callback; LLaMA-Factory trains eager",
                            COMPILE_CALLBACK)
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
        home = Path(os.environ.get("IVL3_HOME", Path.home() / ".cache" / "ivl3"))
        out["deepspeed"] = _deepspeed_config(ds, home / "llamafactory")  # same content every time: shared
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


def launch_argv(recipe: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None) -> Tuple[List[str], Dict[str, str]]:
    """argv + extra env for one LLaMA-Factory training run of an ms-swift-style ``recipe``.

    One process: ``python -m ivl3_plugin.hosts.llamafactory_launch --key value …``.  With
    ``NPROC_PER_NODE``/``NNODES``/``FORCE_TORCHRUN`` (env, or the same keys in lower case) it runs under
    ``python -m torch.distributed.run`` instead of LLaMA-Factory's own torchrun re-exec, so
    every rank imports our registrations.
    """
    merged = {**recipe, **(overrides or {})}
    topo = {k: merged.pop(k) for k in ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port",
                                       "force_torchrun") if k in merged}
    env = {k: str(v) for k, v in (merged.pop("ENV", None) or {}).items()}
    args = lf_args(merged)
    python = lf_python()
    nproc = int(topo.get("nproc_per_node", os.environ.get("NPROC_PER_NODE", 1)))
    nnodes = int(topo.get("nnodes", os.environ.get("NNODES", 1)))
    module = ["-m", "ivl3_plugin.hosts.llamafactory_launch"]
    force = _truthy(topo.get("force_torchrun", os.environ.get("FORCE_TORCHRUN", "0")))
    if nproc > 1 or nnodes > 1 or force:
        dist = ["--nproc_per_node", str(nproc), "--nnodes", str(nnodes),
                "--node_rank", str(topo.get("node_rank", os.environ.get("NODE_RANK", 0))),
                "--master_addr", str(topo.get("master_addr", os.environ.get("MASTER_ADDR", "127.0.0.1"))),
                "--master_port", str(topo.get("master_port", os.environ.get("MASTER_PORT", 29500)))]
        argv = [python, "-m", "torch.distributed.run", *dist, *module, *to_cli(args)]
    else:
        argv = [python, *module, *to_cli(args)]
    env.setdefault("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return argv, env
