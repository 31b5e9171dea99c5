"""Recipe + topology + host -> :class:`~ivl3_plugin.recipe.launch.Launch`: the one path every training launch takes.

``ivl3 train`` and ``ivl3 demo`` both call :func:`training_launch`, so the demo runs its recipe
exactly as a user's ``ivl3 train`` would: validated (the recipe, then the host's own checks),
prepared (batch re-split for the GPUs used, paths resolved), then written by the host adapter.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, List

from ..recipe.config import Recipe, RecipeError, recipe_stage, validate
from ..recipe.launch import DATA_KEYS, TINY_MODEL, Launch, Topology, names_dataset, prepare
from . import get_host

PLACEHOLDER = re.compile(r"^<.*>$")  # shipped recipes name the model/dataset the user must give as <…>
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# torchrun settings come from our flags and always win; the recipe's ENV block yields to the caller's env
FORCED_ENV = ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


def training_launch(recipe: Recipe, overrides: Dict[str, Any], topology: Topology, host: str = "swift",
                    check: bool = True, build_tiny: bool = True) -> Launch:
    """Validate, prepare and let host ``host`` write the launch of ``recipe`` (overrides already applied)."""
    from ..plugins import get_plugins

    adapter = get_host(host)
    if check:
        problems = (validate(recipe, world_size=topology.world, check_batch=False) + input_problems(recipe)
                    + adapter.validate(recipe))
        if problems:
            raise RecipeError("invalid recipe:\n  " + "\n  ".join(problems))
    prepared, notes = prepare(recipe, topology, user_split="gradient_accumulation_steps" in overrides,
                              build_tiny=build_tiny, dataset_names=get_plugins().datasets.names())
    launch = adapter.training_launch(prepared, topology)
    launch.notes[:0] = notes
    return launch


def _as_list(value) -> List[str]:
    return [value] if isinstance(value, str) else [v for v in (value or []) if isinstance(v, str)]


def input_problems(recipe: Recipe) -> List[str]:
    """The model must be a local folder and every dataset a registered name or an existing file, so a run
    fails here, in a second, naming the field, instead of minutes later inside the host (or on the hub)."""
    from ..plugins import get_plugins

    w, a, problems = recipe.where, recipe.args, []
    model = a.get("model")
    if isinstance(model, str) and model != TINY_MODEL:
        path = Path(os.path.expandvars(os.path.expanduser(model)))
        if PLACEHOLDER.match(model):
            problems.append(f"{w}: field 'model': {model} is the recipe's placeholder: pass model=DIR (your "
                            "InternVL3 checkpoint folder)")
        elif not path.exists():
            hint = (f"ivl3 trains a checkpoint folder you have: huggingface-cli download {model} --local-dir "
                    f"models/{model.rsplit('/', 1)[-1]}, then model=models/{model.rsplit('/', 1)[-1]}"
                    if HUB_ID.match(model) and not model.startswith((".", "/")) else
                    f"no such folder (relative paths are from {Path.cwd()})")
            problems.append(f"{w}: field 'model': {model!r} is not a local folder: {hint}")
        elif not path.is_dir():
            problems.append(f"{w}: field 'model': {model} is a file; give the checkpoint's folder")
    datasets = get_plugins().datasets
    pairs = recipe_stage(a) == "mpo"
    for key in DATA_KEYS:
        for entry in _as_list(a.get(key)):
            name = entry.split("#", 1)[0]
            if PLACEHOLDER.match(entry):
                want = (f"{key}=PAIRS.jsonl (preference rows: messages, rejected_response, videos)" if pairs else
                        f"{key}=DIR/swift/train.jsonl (written by `ivl3 convert … -o DIR`)")
                problems.append(f"{w}: field '{key}': {entry} is the recipe's placeholder: pass {want}")
            elif pairs and name.endswith(".jsonl") and Path(os.path.expanduser(name)).is_file():
                problems += _pair_row_problems(w, key, Path(os.path.expanduser(name)))
            elif not (names_dataset(entry, datasets.names()) or Path(os.path.expanduser(name)).exists()):
                problems.append(f"{w}: field '{key}': {entry!r} is neither a registered dataset (known: "
                                f"{', '.join(datasets.names()) or 'none'}) nor an existing file (relative paths are "
                                f"from {Path.cwd()})")
    return problems


def _pair_row_problems(where: str, key: str, path: Path) -> List[str]:
    """A preference recipe trains on pairs: the file's first row must have a rejected answer (checked in a
    millisecond here, instead of a KeyError deep inside ``swift rlhf`` after the model has loaded)."""
    import json

    with path.open() as f:
        first = next((line for line in f if line.strip()), None)
    try:
        row = json.loads(first) if first else {}
    except ValueError:
        return []  # not ours to parse: ms-swift reports its own format errors
    if isinstance(row, dict) and not ({"rejected_response", "rejected_messages"} & row.keys()):
        return [(f"{where}: field '{key}': {path} has no 'rejected_response' in its first row: a preference (mpo) "
                 "recipe trains on pairs (messages with the chosen answer, rejected_response, videos)")]
    return []


def launch_environment(launch: Launch, base=None) -> Dict[str, str]:
    """The caller's environment plus the launch's (the recipe's ENV block yields to what the caller set)."""
    base = dict(os.environ if base is None else base)
    return {**base, **{k: v for k, v in launch.env.items() if k not in base or k in FORCED_ENV}}
