"""Run settings of trainer callbacks: one environment variable keyed by callback name (the setting ``CALLBACK_ARGS``).

The design of the template's run settings (``TEMPLATE_ARGS``): ``ivl3 train`` writes the variable into the
recipe's ``ENV`` block, ms-swift exports that block to every rank (also for a plain
``swift sft recipe.yaml``), and the callback named in it reads its settings through
``ivl3_plugin.settings``.  Only callbacks with declared fields (:data:`CALLBACK_FIELDS`) take
settings, and validation names the field for anything else.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .compile import ATTENTION_CHOICES, CALLBACK_NAME, COMPILE_FIELDS, RECOMPUTE_CALLBACK, RECOMPUTE_FIELDS
from .length_group import LENGTH_GROUP_CALLBACK, LENGTH_GROUP_FIELDS


def callback_args(recipe_args: Dict[str, Any]) -> Dict[str, Any]:
    """The run settings the recipe gives trainer callbacks: its ENV block's CALLBACK_ARGS, parsed."""
    from ..settings import CALLBACK_ARGS

    raw = (recipe_args.get("ENV") or {}).get(CALLBACK_ARGS.name)
    return CALLBACK_ARGS.get({CALLBACK_ARGS.name: str(raw)}) if raw else {}


def set_callback_args(recipe_args: Dict[str, Any], callback: str, values: Optional[Dict[str, Any]]) -> None:
    """Merge run settings for trainer callback ``callback`` into the recipe's ENV block (``None``: drop them).

    Like template settings they travel in one variable keyed by name (the setting CALLBACK_ARGS), which
    ms-swift exports from a recipe's ENV block to every rank, so ``swift sft recipe.yaml`` reads them too."""
    import json

    from ..settings import CALLBACK_ARGS

    current = callback_args(recipe_args)
    if values is None:
        current.pop(callback, None)
    else:
        current[callback] = {**(current.get(callback) or {}), **values}
    env = recipe_args.setdefault("ENV", {})
    if current:
        env[CALLBACK_ARGS.name] = json.dumps(current, sort_keys=True)
    else:
        env.pop(CALLBACK_ARGS.name, None)
        if not env:
            recipe_args.pop("ENV")


CALLBACK_FIELDS = {RECOMPUTE_CALLBACK: RECOMPUTE_FIELDS, CALLBACK_NAME: COMPILE_FIELDS,
                   LENGTH_GROUP_CALLBACK: LENGTH_GROUP_FIELDS}


def field_error(callback: str, key: str, value: Any) -> Optional[str]:
    """What is wrong with one callback setting, None when it is fine."""
    if callback == RECOMPUTE_CALLBACK and key == "layers":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{callback}.{key} must be a whole number >= 0, got {value!r}"
    if callback == LENGTH_GROUP_CALLBACK and key == "window":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"{callback}.{key} must be a whole number >= 1, got {value!r}"
    if callback == CALLBACK_NAME and key == "attention" and value not in ATTENTION_CHOICES:
        return f"{callback}.{key} must be one of {', '.join(ATTENTION_CHOICES)}, got {value!r}"
    if callback == CALLBACK_NAME and key in ("skip_padding", "patch_matmul", "gelu_epilogue", "host_ahead") and not isinstance(value, bool):
        return f"{callback}.{key} must be true or false, got {value!r}"
    return None


def callback_args_errors(recipe) -> List[str]:
    from ..settings import CALLBACK_ARGS, SettingError

    where = f"{recipe.where}: field 'ENV.{CALLBACK_ARGS.name}'"
    try:
        per_callback = callback_args(recipe.args)
    except SettingError as exc:
        return [f"{where}: {exc}"]
    listed = recipe.args.get("callbacks") or []
    errors = []
    for name, values in per_callback.items():
        if name not in CALLBACK_FIELDS:
            errors.append(f"{where}: no run settings for callback {name!r} (known: {', '.join(CALLBACK_FIELDS)})")
            continue
        if not isinstance(values, dict):
            errors.append(f"{where}: settings of {name!r} must be a JSON object, got {values!r}")
            continue
        if isinstance(listed, list) and name not in listed:
            errors.append(f"{where}: settings for {name!r}, but field 'callbacks' does not list it")
        for key, value in values.items():
            if key not in CALLBACK_FIELDS[name]:
                errors.append(f"{where}: {name!r} has no setting {key!r} (known: {', '.join(CALLBACK_FIELDS[name])})")
            elif field_error(name, key, value):
                errors.append(f"{where}: {field_error(name, key, value)}")
    if isinstance(listed, list) and RECOMPUTE_CALLBACK in listed:
        if "layers" not in (per_callback.get(RECOMPUTE_CALLBACK) or {}):
            errors.append(f"{recipe.where}: field 'callbacks' lists {RECOMPUTE_CALLBACK} without its layer count: "
                          f"set ENV.{CALLBACK_ARGS.name} {{\"{RECOMPUTE_CALLBACK}\": {{\"layers\": K}}}} or "
                          f"callback.{RECOMPUTE_CALLBACK}.layers=K")
        if recipe.args.get("gradient_checkpointing") is False:
            errors.append(f"{recipe.where}: field 'callbacks' lists {RECOMPUTE_CALLBACK}, which keeps checkpointing on "
                          "some layers, but field 'gradient_checkpointing' is false")
    return errors
