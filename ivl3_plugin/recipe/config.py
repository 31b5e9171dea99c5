"""A recipe: an ms-swift config file (``swift sft recipe.yaml`` works as is) plus our metadata.

Metadata lives in comment lines that start with ``#@ivl3`` (YAML after the
prefix), so ms-swift, which reads the file with ``yaml.safe_load``, never
sees it, and ``ivl3 train`` / ``ivl3 plan`` read it back::

    #@ivl3 model_size: 8B
    #@ivl3 gpus_per_node: 8
    model: OpenGVLab/InternVL3-8B
    tuner_type: full

Validation names the file and the field; batch maths is checked against the
GPUs a launch will really use.
"""
from __future__ import annotations

import copy
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml

from .callback_args import callback_args_errors, set_callback_args
from .compile import CALLBACK_NAME

META_PREFIX = "#@ivl3"
DEEPSPEED_NAMES = ("zero0", "zero1", "zero2", "zero3", "zero2_offload", "zero3_offload")
TUNERS = ("full", "lora")
META_FIELDS = {
    "model_size": str, "tuner": str, "gpus_per_node": int, "nodes": int, "gpu_memory_gb": (int, float),
    "frames": int, "global_batch": int, "source": str, "description": str, "cpu": bool,
    "host_memory_gb": (int, float), "stage": str,
}


class RecipeError(ValueError):
    """A recipe that cannot run: the message names the file and the field."""


@dataclass
class Recipe:
    path: Optional[Path]
    args: Dict[str, Any]  # what ms-swift reads (including its ENV block)
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "recipe"

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "recipe"

    def copy(self) -> "Recipe":
        return Recipe(self.path, copy.deepcopy(self.args), copy.deepcopy(self.meta))

    @property
    def world_size(self) -> int:
        return int(self.meta.get("gpus_per_node", 1)) * int(self.meta.get("nodes", 1))


def parse_recipe(text: str, path: Optional[Path] = None) -> Recipe:
    where = str(path) if path else "recipe"
    meta_lines = [line[len(META_PREFIX):] for line in text.splitlines() if line.startswith(META_PREFIX)]
    try:
        meta = yaml.safe_load("\n".join(l[1:] if l.startswith(" ") else l for l in meta_lines)) or {}
        args = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(args, dict):
        raise RecipeError(f"{where}: a recipe is a mapping of ms-swift arguments, got {type(args).__name__}")
    if not isinstance(meta, dict):
        raise RecipeError(f"{where}: the '{META_PREFIX}' lines must form a YAML mapping")
    return Recipe(path, args, meta)


def load_recipe(path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    return parse_recipe(text, path)


def dump_recipe(recipe: Recipe, header: str = "") -> str:
    """Recipe text: optional comment header, metadata lines, then the ms-swift arguments."""
    lines = [f"# {l}" if l else "#" for l in header.strip().splitlines()] if header else []
    for key, value in recipe.meta.items():
        lines.append(f"{META_PREFIX} {yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()[1:-1]}")
    body = yaml.safe_dump(recipe.args, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(lines + [body])


def _check_type(where: str, key: str, value: Any, kind, minimum=None, maximum=None) -> List[str]:
    if isinstance(value, bool) and kind is not bool:
        return [f"{where}: field '{key}': expected {getattr(kind, '__name__', kind)}, got {value!r}"]
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, kind):
        name = getattr(kind, "__name__", None) or " or ".join(k.__name__ for k in kind)
        return [f"{where}: field '{key}': expected {name}, got {value!r}"]
    if minimum is not None and value < minimum:
        return [f"{where}: field '{key}': must be >= {minimum}, got {value!r}"]
    if maximum is not None and value > maximum:
        return [f"{where}: field '{key}': must be <= {maximum}, got {value!r}"]
    return []


def deepspeed_path(recipe: Recipe) -> Optional[Path]:
    """A ``deepspeed:`` value that is a file, resolved against the recipe's folder."""
    ds = recipe.args.get("deepspeed")
    if not ds or str(ds) in DEEPSPEED_NAMES:
        return None
    path = Path(str(ds))
    if not path.is_absolute() and recipe.path is not None:
        path = recipe.path.parent / path
    return path


def validate(recipe: Recipe, world_size: Optional[int] = None, check_batch: bool = True) -> List[str]:
    """Every problem found, each naming the file and the field (empty list: fine).

    ``check_batch=False`` skips the batch maths (a launch re-splits the batch for the GPUs it uses)."""
    w, a, m = recipe.where, recipe.args, recipe.meta
    errors: List[str] = []
    for key in ("model", "template", "tuner_type"):
        if key not in a:
            errors.append(f"{w}: field '{key}' is required")
    if "dataset" not in a and "cached_dataset" not in a:
        errors.append(f"{w}: field 'dataset' is required (a dataset name or file)")
    if "tuner_type" in a and a["tuner_type"] not in TUNERS:
        errors.append(f"{w}: field 'tuner_type': expected one of {TUNERS}, got {a['tuner_type']!r}")
    checks = [("learning_rate", float, 0, 1), ("per_device_train_batch_size", int, 1, None),
              ("gradient_accumulation_steps", int, 1, None), ("warmup_ratio", float, 0, 0.999),
              ("max_length", int, 1, None), ("lora_rank", int, 1, None), ("lora_alpha", (int, float), 0, None),
              ("num_train_epochs", (int, float), 0, None), ("max_steps", int, -1, None),
              ("weight_decay", float, 0, None)]
    for key, kind, lo, hi in checks + [("save_steps", int, 1, None), ("logging_steps", int, 1, None),
                                       ("eval_steps", int, 1, None), ("dataloader_num_workers", int, 0, None),
                                       ("save_total_limit", int, 1, None)]:
        if key in a:
            errors += _check_type(w, key, a[key], kind, lo, hi)
    for key in ("learning_rate", "num_train_epochs"):  # 0 trains nothing: say so instead of a silent no-op run
        if isinstance(a.get(key), (int, float)) and not isinstance(a.get(key), bool) and a[key] <= 0:
            errors.append(f"{w}: field '{key}': must be > 0, got {a[key]!r}")
    if a.get("max_steps") == 0:
        errors.append(f"{w}: field 'max_steps': 0 trains nothing; give a number of steps, or -1 for epochs")
    for key in ("freeze_vit", "freeze_llm", "freeze_aligner", "gradient_checkpointing", "use_liger_kernel"):
        if key in a and not isinstance(a[key], bool):
            errors.append(f"{w}: field '{key}': expected true or false, got {a[key]!r}")
    if a.get("tuner_type") == "lora" and "lora_rank" not in a:
        errors.append(f"{w}: field 'lora_rank' is required for a LoRA recipe")
    if a.get("use_liger_kernel") is True and importlib.util.find_spec("liger_kernel") is None:
        # ms-swift would stop only after loading the model; say it before anything starts
        errors.append(f"{w}: field 'use_liger_kernel' needs the liger-kernel package (GPU only): "
                      "pip install 'ivl3-plugin[liger]'")
    errors += _callback_errors(recipe)
    ds = a.get("deepspeed")
    if ds is not None:
        path = deepspeed_path(recipe)
        if path is not None and not path.is_file():
            errors.append(f"{w}: field 'deepspeed': {ds!r} is neither one of {DEEPSPEED_NAMES} nor an existing file")
    if "ENV" in a and not isinstance(a["ENV"], dict):
        errors.append(f"{w}: field 'ENV': expected a mapping of environment variables")
    else:
        errors += _template_args_errors(recipe) + callback_args_errors(recipe)
    for key, value in m.items():
        kind = META_FIELDS.get(key)
        if kind is None:
            errors.append(f"{w}: metadata field '{key}' is unknown (known: {', '.join(META_FIELDS)})")
        elif not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            errors.append(f"{w}: metadata field '{key}': expected {getattr(kind, '__name__', kind)}, got {value!r}")
    errors += _stage_errors(recipe)
    if "tuner" in m and "tuner_type" in a and m["tuner"] != a["tuner_type"]:
        errors.append(f"{w}: metadata field 'tuner' ({m['tuner']!r}) disagrees with 'tuner_type' ({a['tuner_type']!r})")
    if not errors and check_batch:
        errors += batch_errors(recipe, world_size)
    return errors


def _stage_errors(recipe: Recipe) -> List[str]:
    """A preference (``mpo``) recipe runs ``swift rlhf --rlhf_type dpo``; its metadata stage must say so."""
    w, a, m = recipe.where, recipe.args, recipe.meta
    stage = m.get("stage")
    if stage is None:
        return []
    if stage not in ("sft", "mpo"):
        return [f"{w}: metadata field 'stage': expected 'sft' or 'mpo', got {stage!r}"]
    if stage != recipe_stage(a):
        why = "mpo needs rlhf_type: dpo" if stage == "mpo" else "sft recipes set no rlhf_type"
        return [f"{w}: metadata field 'stage' is {stage!r} but field 'rlhf_type' is {a.get('rlhf_type')!r} ({why})"]
    return []


def template_args(recipe_args: Dict[str, Any]) -> Dict[str, Any]:
    """The run settings the recipe gives templates: its ENV block's TEMPLATE_ARGS, parsed."""
    from ..settings import TEMPLATE_ARGS

    raw = (recipe_args.get("ENV") or {}).get(TEMPLATE_ARGS.name)
    return TEMPLATE_ARGS.get({TEMPLATE_ARGS.name: str(raw)}) if raw else {}


def set_template_args(recipe_args: Dict[str, Any], values: Dict[str, Any], template: Optional[str] = None) -> None:
    """Merge run settings for ``template`` (default: the recipe's ``template``) into the recipe's ENV block.

    They travel in one variable keyed by template name (the setting TEMPLATE_ARGS), which ms-swift
    hands to every rank and dataset worker; only the named template applies them."""
    import json

    from ..settings import TEMPLATE_ARGS

    name = template or str(recipe_args.get("template") or "ivl3_video")
    current = template_args(recipe_args)
    current[name] = {**(current.get(name) or {}), **values}
    recipe_args.setdefault("ENV", {})[TEMPLATE_ARGS.name] = json.dumps(current, sort_keys=True)


def _template_args_errors(recipe: Recipe) -> List[str]:
    from ..settings import TEMPLATE_ARGS, SettingError
    from ..template.spec import TemplateSpec

    where = f"{recipe.where}: field 'ENV.{TEMPLATE_ARGS.name}'"
    try:
        per_template = template_args(recipe.args)
    except SettingError as exc:
        return [f"{where}: {exc}"]
    errors = []
    for name, values in per_template.items():
        try:  # the fields and their types, then the values a spec accepts (on_overflow, counts >= 1)
            TemplateSpec(name=name).with_run_args(values)
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
    return errors


def zero_stage(recipe: Recipe) -> Optional[int]:
    """The DeepSpeed ZeRO stage a recipe asks for (a name or a config file), None without DeepSpeed."""
    ds = recipe.args.get("deepspeed")
    if ds is None:
        return None
    if str(ds) in DEEPSPEED_NAMES:
        return int(str(ds)[4])
    path = deepspeed_path(recipe)
    try:
        import json

        return int(json.loads(path.read_text()).get("zero_optimization", {}).get("stage", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        return None  # unreadable: the 'deepspeed' check reports it


def _callback_errors(recipe: Recipe) -> List[str]:
    w, cbs = recipe.where, recipe.args.get("callbacks")
    if cbs is None:
        return []
    if not isinstance(cbs, list) or not all(isinstance(c, str) for c in cbs):
        return [f"{w}: field 'callbacks': expected a list of callback names, got {cbs!r}"]
    if CALLBACK_NAME in cbs and zero_stage(recipe) == 3:
        return [f"{w}: field 'callbacks': {CALLBACK_NAME} does not work with DeepSpeed ZeRO-3 "
                f"(field 'deepspeed': {recipe.args['deepspeed']!r}); drop it or use ZeRO-1/2"]
    return []


def batch_errors(recipe: Recipe, world_size: Optional[int] = None) -> List[str]:
    """global batch = per-device x GPUs per node x nodes x gradient accumulation."""
    if "global_batch" not in recipe.meta:
        return []
    world = world_size or recipe.world_size
    got = global_batch(recipe.args, world)
    want = int(recipe.meta["global_batch"])
    if got != want:
        return [f"{recipe.where}: batch maths: per_device_train_batch_size "
                f"{recipe.args.get('per_device_train_batch_size', 1)} x {world} GPUs x gradient_accumulation_steps "
                f"{recipe.args.get('gradient_accumulation_steps', 1)} = {got}, but metadata field 'global_batch' "
                f"is {want}"]
    return []


def deepspeed_name(zero: int, offload: bool = False) -> Optional[str]:
    """ms-swift's ``--deepspeed`` name for a ZeRO stage (None: no DeepSpeed, i.e. DDP or one GPU)."""
    if zero == 0:
        return None
    return f"zero{zero}" + ("_offload" if offload else "")


def recipe_name(size: str, tuner: str, stage: str = "sft") -> str:
    """The shipped recipes' names: ``internvl3-8b-lora``; preference training ``internvl3-8b-mpo`` (LoRA) and
    ``internvl3-8b-mpo-full``."""
    if stage == "mpo":
        return f"internvl3-{size.lower()}-mpo" + ("-full" if tuner == "full" else "")
    return f"internvl3-{size.lower()}-{tuner}"


def recipe_stage(recipe_args: Dict[str, Any]) -> str:
    """``mpo`` for a preference recipe (``rlhf_type: dpo``, what ``swift rlhf`` runs), else ``sft``."""
    return "mpo" if recipe_args.get("rlhf_type") == "dpo" else "sft"


def grad_accum_for(global_batch_size: int, micro_batch: int, world: int) -> int:
    """The smallest accumulation that reaches ``global_batch_size`` (micro-batch x GPUs x accumulation)."""
    return max(1, math.ceil(int(global_batch_size) / (micro_batch * world)))


def global_batch(args: Dict[str, Any], world: int) -> int:
    return int(args.get("per_device_train_batch_size", 1)) * int(world) * int(args.get("gradient_accumulation_steps", 1))


def fit_grad_accum(recipe: Recipe, world: int) -> Tuple[int, Optional[str]]:
    """Gradient accumulation that keeps the recipe's global batch on ``world`` GPUs (and a note)."""
    per = int(recipe.args.get("per_device_train_batch_size", 1))
    want = recipe.meta.get("global_batch")
    current = int(recipe.args.get("gradient_accumulation_steps", 1))
    if not want:
        return current, None
    accum = grad_accum_for(int(want), per, world)
    if per * world * accum != int(want):
        note = (f"global batch {want} is not a multiple of per_device_train_batch_size {per} x {world} GPUs; "
                f"using gradient_accumulation_steps {accum} (global batch {per * world * accum})")
    elif accum != current:
        note = (f"gradient_accumulation_steps {current} -> {accum} to keep global batch {want} "
                f"on {world} GPU(s) ({per} x {world} x {accum})")
    else:
        note = None
    return accum, note


# YAML 1.1 reads these bare words as booleans; on a command line they are words (`save_strategy=no`)
_WORDS = {"no", "yes", "on", "off", "y", "n"}


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """``key=value`` strings (values read as YAML: ``lr=2e-5``, ``freeze_vit=false``, ``dataset=[a,b]``;
    only ``true``/``false`` are booleans: ``save_strategy=no`` stays the word ``no``)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise RecipeError(f"override {item!r}: expected key=value")
        try:
            value = raw.strip() if raw.strip().lower() in _WORDS else yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key] = value
    return out


def apply_overrides(recipe: Recipe, overrides: Dict[str, Any]) -> Recipe:
    """A copy with overrides applied; ``meta.KEY=value`` changes metadata, ``ENV.KEY=value`` the ENV block,
    ``template.FIELD=value`` a run setting of the recipe's template (see :func:`set_template_args`),
    ``callback.NAME.FIELD=value`` one of trainer callback NAME (see :func:`set_callback_args`)."""
    new = recipe.copy()
    template_values = {}
    for key, value in overrides.items():
        if key.startswith("callback."):
            name, _, fld = key[len("callback."):].partition(".")
            if not name or not fld:
                raise RecipeError(f"override {key!r}: expected callback.NAME.FIELD=value")
            set_callback_args(new.args, name, {fld: value})
        elif key.startswith("meta."):
            new.meta[key[5:]] = value
        elif key.startswith("ENV."):
            new.args.setdefault("ENV", {})[key[4:]] = str(value)
        elif key.startswith("template."):
            template_values[key[len("template."):]] = value
        elif value is None:
            new.args.pop(key, None)
        else:
            new.args[key] = value
    if template_values:  # after `template=NAME`, so they key by the template the run uses
        set_template_args(new.args, template_values)
    return new
