"""From a recipe to a launch: argv + environment for ``swift sft`` (torchrun through ms-swift), or sbatch.

Plain functions returning argv lists and env dicts, so ``--dry-run`` prints
exactly what would run and tests check it without launching.  ms-swift starts
torchrun itself when ``NPROC_PER_NODE`` / ``NNODES`` are set
(``swift/cli/main.py``), so multi-node is only a matter of environment.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .recipe import Recipe, RecipeError, fit_grad_accum, global_batch, load_recipe, swift_argv

TINY_MODEL = "ivl3-tiny"
DEFAULT_PORT = 29500
TORCHRUN_ENV = ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Topology:
    gpus_per_node: int = 1
    nodes: int = 1
    node_rank: int = 0
    master_addr: Optional[str] = None
    master_port: int = DEFAULT_PORT

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


def swift_command() -> List[str]:
    """``swift`` next to this Python if installed, else ``python -m swift.cli.main`` (same thing)."""
    exe = shutil.which("swift", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "swift.cli.main"]


def topology_env(topo: Topology) -> Dict[str, str]:
    """torchrun's environment as ms-swift reads it; nothing for one process on one node."""
    if topo.nodes < 1 or topo.gpus_per_node < 1:
        raise RecipeError("--gpus and --nodes must be at least 1")
    if topo.nodes == 1 and topo.gpus_per_node == 1:
        return {}
    env = {"NPROC_PER_NODE": str(topo.gpus_per_node)}
    if topo.nodes > 1:
        if not topo.master_addr:
            raise RecipeError(f"{topo.nodes} nodes need --master-addr (the rank-0 node's address) and --node-rank "
                              "on each node, or --slurm")
        if not 0 <= topo.node_rank < topo.nodes:
            raise RecipeError(f"--node-rank {topo.node_rank} is outside 0..{topo.nodes - 1}")
        env.update(NNODES=str(topo.nodes), NODE_RANK=str(topo.node_rank), MASTER_ADDR=topo.master_addr,
                   MASTER_PORT=str(topo.master_port))
    elif topo.master_port != DEFAULT_PORT:
        env["MASTER_PORT"] = str(topo.master_port)
    return env


def resolve_batch(recipe: Recipe, overrides: Dict, world: int) -> List[str]:
    """Keep the recipe's global batch on ``world`` GPUs unless the user set the split; returns notes."""
    notes: List[str] = []
    a = recipe.args
    user_split = "gradient_accumulation_steps" in overrides
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


def resolve_paths(recipe: Recipe, build_tiny: bool) -> None:
    a = recipe.args
    if a.get("model") == TINY_MODEL:
        from ..tiny import default_tiny_model_dir

        target = default_tiny_model_dir()
        if build_tiny:
            from ..tiny import build_tiny_model
            from ..tiny.model import demo_text

            target = build_tiny_model(target, extra_text=demo_text())
        a["model"] = str(target)
    for key in ("model", "output_dir"):
        if isinstance(a.get(key), str) and ("~" in a[key] or "$" in a[key]):
            a[key] = os.path.expandvars(os.path.expanduser(a[key]))
    ds = recipe.args.get("deepspeed")
    if ds and recipe.path is not None and str(ds).endswith(".json") and not Path(str(ds)).is_absolute():
        a["deepspeed"] = str((recipe.path.parent / str(ds)).resolve())


def recipe_env(recipe: Recipe) -> Dict[str, str]:
    """The recipe's ENV block plus the offline / plugin settings every launch wants."""
    env = {k: str(v) for k, v in (recipe.args.get("ENV") or {}).items()}
    if recipe.meta.get("cpu"):
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def swift_launch(recipe: Recipe, overrides: Dict, topo: Topology, build_tiny: bool = True) -> Launch:
    """argv + env for ``swift sft`` of ``recipe`` (with ``overrides`` already applied) on ``topo``."""
    recipe = recipe.copy()
    notes = resolve_batch(recipe, overrides, topo.world)
    resolve_paths(recipe, build_tiny)
    if topo.world > 1 and recipe.meta.get("cpu"):
        raise RecipeError(f"{recipe.where}: a CPU recipe runs as one process; drop --gpus/--nodes")
    argv = swift_command() + ["sft"] + swift_argv(recipe.args)
    if "--check_model" not in argv:
        argv += ["--check_model", "false"]  # no hub round-trips for a model we already have
    env = {**recipe_env(recipe), **topology_env(topo)}
    return Launch(argv, env, notes, recipe)


SBATCH = """#!/bin/bash
# Written by `ivl3 train {name} --slurm`; submit with: sbatch {script}
#SBATCH --job-name=ivl3-{name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --cpus-per-task={cpus}
#SBATCH --output={log}
{extra}set -euo pipefail
export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_PORT={port}
export NNODES="$SLURM_NNODES"
export NPROC_PER_NODE={gpus}
{exports}
# one task per node; each node's torchrun (started by swift) gets its rank from SLURM_NODEID
srun --kill-on-bad-exit=1 bash -c 'export NODE_RANK="$SLURM_NODEID"; exec "$@"' ivl3-node {command}
"""


def sbatch_script(launch: Launch, topo: Topology, name: str, script: Path, cpus_per_task: int = 16,
                  sbatch_args: Optional[List[str]] = None) -> str:
    """An sbatch script for ``launch`` over ``topo.nodes`` nodes (every argument quoted)."""
    out = (launch.recipe.args.get("output_dir") if launch.recipe else None) or "."
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in launch.env.items() if k not in TORCHRUN_ENV)
    extra = "".join(f"#SBATCH {a}\n" for a in (sbatch_args or []))
    return SBATCH.format(name=name, script=script, nodes=topo.nodes, gpus=topo.gpus_per_node, cpus=cpus_per_task,
                         log=Path(out) / "slurm-%j.out", extra=extra, port=topo.master_port, exports=exports,
                         command=" ".join(shlex.quote(a) for a in launch.argv))


def load(name_or_path: str, folders: Dict[str, Path]) -> Recipe:
    return load_recipe(find_recipe(name_or_path, folders))
