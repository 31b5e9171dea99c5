"""From a recipe to a launch, the host-free half: topology, batch split, paths, and the ``Launch`` value.

A host adapter (``ivl3_plugin.hosts.<name>``) turns a prepared recipe and a :class:`Topology`
into a :class:`Launch`: an argv list and the environment it adds, never a shell string, so
``--dry-run`` prints exactly what runs and tests check it without launching.  What every host
needs first (the recipe's global batch re-split for the GPUs really used, ``ivl3-tiny`` and
``~`` resolved, the recipe's ``ENV`` block) is done here once, by :func:`prepare`.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Dict, List, Optional, Tuple

from .config import Recipe, RecipeError, fit_grad_accum, global_batch, load_recipe

TINY_MODEL = "ivl3-tiny"
DEFAULT_PORT = 29500


@dataclass
class Topology:
    gpus_per_node: int = 1
    nodes: int = 1
    node_rank: int = 0
    master_addr: Optional[str] = None
    master_port: int = DEFAULT_PORT

    def __post_init__(self):
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise RecipeError(f"--gpus and --nodes must be at least 1 (got --gpus {self.gpus_per_node}, "
                              f"--nodes {self.nodes})")
        if self.nodes > 1 and not self.master_addr:
            raise RecipeError(f"{self.nodes} nodes need --master-addr (the rank-0 node's address) and --node-rank "
                              "on each node, or --slurm")
        if not 0 <= self.node_rank < self.nodes:
            raise RecipeError(f"--node-rank {self.node_rank} is outside 0..{self.nodes - 1}")

    @property
    def world(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass
class Launch:
    argv: List[str]
    env: Dict[str, str]  # only what we set on top of the caller's environment
    notes: List[str] = field(default_factory=list)
    recipe: Optional[Recipe] = None

    def render(self) -> str:
        """The launch as one copy-pasteable line (for display only; we never run a shell string)."""
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (envs + " " if envs else "") + " ".join(shlex.quote(a) for a in self.argv)


def find_recipe(name_or_path: str, folders: Dict[str, Path]) -> Path:
    """A path, or a recipe name (file stem) found in the registered recipe folders."""
    path = Path(os.path.expanduser(name_or_path))
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    found = [Path(f) / f"{stem}.yaml" for f in folders.values() if (Path(f) / f"{stem}.yaml").is_file()]
    if not found:
        known = sorted({p.stem for f in folders.values() for p in Path(f).glob("*.yaml")})
        raise RecipeError(f"no recipe file or name {name_or_path!r}; known recipes: {', '.join(known) or 'none'}")
    return found[0]


def list_recipes(folders: Dict[str, Path]) -> Dict[str, Path]:
    out: Dict[str, Path] = {}
    for folder in folders.values():
        for p in sorted(Path(folder).glob("*.yaml")):
            out.setdefault(p.stem, p)
    return out


def load(name_or_path: str, folders: Dict[str, Path]) -> Recipe:
    return load_recipe(find_recipe(name_or_path, folders))


def resolve_batch(recipe: Recipe, user_split: bool, world: int) -> List[str]:
    """Keep the recipe's global batch on ``world`` GPUs unless the user set the split; returns notes."""
    notes: List[str] = []
    a = recipe.args
    if not user_split:
        accum, note = fit_grad_accum(recipe, world)
        a["gradient_accumulation_steps"] = accum
        if note:
            notes.append(note)
    got = global_batch(a, world)
    want = recipe.meta.get("global_batch")
    if want and got != int(want):
        notes.append(f"global batch is {got} (per_device_train_batch_size {a.get('per_device_train_batch_size', 1)} "
                     f"x {world} GPUs x gradient_accumulation_steps {a.get('gradient_accumulation_steps', 1)}), "
                     f"not the recipe's {want}")
    return notes


PATH_KEYS = ("model", "output_dir", "adapters", "resume_from_checkpoint")  # folders: made absolute
DATA_KEYS = ("dataset", "val_dataset")  # lists whose entries may be files (made absolute) or dataset names


def _absolute(value: str, always: bool) -> str:
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return str(path.resolve()) if always or path.exists() else value


def names_dataset(entry: str, names: Collection[str]) -> bool:
    """``entry`` (``NAME``, ``NAME#N``, ``NAME-train``...) names a registered dataset."""
    name = entry.split("#", 1)[0]
    base, _, split = name.rpartition("-")
    return name in names or (base in names and split in ("train", "val", "test"))


def resolve_paths(recipe: Recipe, build_tiny: bool, dataset_names: Collection[str] = ()) -> None:
    """``ivl3-tiny`` -> the built tiny model; paths expanded and made absolute, so the run's ``args.json``
    names them from anywhere (``ivl3 predict`` from another folder, ``swift infer`` later); a DeepSpeed
    file next to the recipe. A registered dataset name stays a name even where a folder of that name
    exists (``make demo`` writes ``./ivl3-demo``, the demo's output; ``./NAME`` means the folder)."""
    a = recipe.args
    if a.get("model") == TINY_MODEL:
        from ..tiny import default_tiny_model_dir, ensure_tiny_model

        a["model"] = str(ensure_tiny_model() if build_tiny else default_tiny_model_dir())
    for key in PATH_KEYS:
        if isinstance(a.get(key), str):
            a[key] = _absolute(a[key], always=key == "output_dir")
        elif isinstance(a.get(key), list):
            a[key] = [_absolute(v, False) if isinstance(v, str) else v for v in a[key]]
    for key in DATA_KEYS:
        value = a.get(key)
        if isinstance(value, (str, list)):
            entries = [value] if isinstance(value, str) else value
            a[key] = [_absolute(v, False) if isinstance(v, str) and not names_dataset(v, dataset_names) else v
                      for v in entries]
    ds = recipe.args.get("deepspeed")
    if ds and recipe.path is not None and str(ds).endswith(".json") and not Path(str(ds)).is_absolute():
        a["deepspeed"] = str((recipe.path.parent / str(ds)).resolve())


def recipe_env(recipe: Recipe) -> Dict[str, str]:
    """The recipe's ENV block (as ms-swift applies it) plus CPU-only for a ``cpu`` recipe."""
    env = {k: str(v) for k, v in (recipe.args.get("ENV") or {}).items()}
    if recipe.meta.get("cpu"):
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def prepare(recipe: Recipe, topology: Topology, user_split: bool = False,
            build_tiny: bool = True, dataset_names: Collection[str] = ()) -> Tuple[Recipe, List[str]]:
    """A copy of ``recipe`` ready for any host on ``topology``, and notes for the user.

    A CPU recipe on several processes (``--gpus N`` = processes per node, ``--nodes``) trains with
    torch's gloo backend: the multi-node path, provable on one machine without a GPU."""
    recipe = recipe.copy()
    notes = resolve_batch(recipe, user_split, topology.world)
    if topology.world > 1 and recipe.meta.get("cpu"):
        notes.append(f"CPU recipe on {topology.world} processes ({topology.gpus_per_node} per node x "
                     f"{topology.nodes} node(s)): distributed over gloo")
    resolve_paths(recipe, build_tiny, dataset_names)
    return recipe, notes
