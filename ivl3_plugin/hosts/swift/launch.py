"""``swift sft`` / ``swift infer`` command lines: the only place that knows ms-swift's CLI and env names."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List

from ...recipe.launch import DEFAULT_PORT, Launch, Topology, recipe_env
from ..protocol import HostError

NAME = "swift"


def swift_command() -> List[str]:
    """``swift`` next to this Python if installed, else ``python -m swift.cli.main`` (the same program)."""
    exe = shutil.which("swift", path=str(Path(sys.executable).parent))
    if exe:
        return [exe]
    if importlib.util.find_spec("swift") is None:
        raise HostError("ms-swift is not installed in this environment: pip install 'ivl3-plugin[swift]'")
    return [sys.executable, "-m", "swift.cli.main"]


def swift_argv(args: Dict[str, Any]) -> List[str]:
    """ms-swift argv for a recipe's arguments (as ``swift`` itself expands a config file; ENV excluded)."""
    argv: List[str] = []
    for key, value in args.items():
        if key == "ENV":
            continue
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv += [str(v) for v in value]
        elif isinstance(value, dict):
            argv.append(json.dumps(value, ensure_ascii=False))
        else:
            argv.append(str(value))
    return argv


def topology_env(topo: Topology) -> Dict[str, str]:
    """torchrun's settings as ms-swift reads them (it starts torchrun itself); nothing for one process."""
    if topo.nodes == 1 and topo.gpus_per_node == 1:
        return {}
    env = {"NPROC_PER_NODE": str(topo.gpus_per_node)}
    if topo.nodes > 1:
        env.update(NNODES=str(topo.nodes), NODE_RANK=str(topo.node_rank), MASTER_ADDR=str(topo.master_addr),
                   MASTER_PORT=str(topo.master_port))
    elif topo.master_port != DEFAULT_PORT:
        env["MASTER_PORT"] = str(topo.master_port)
    return env


def training_launch(recipe, topology: Topology) -> Launch:
    """argv + env of ``swift sft`` for a prepared recipe (``recipe.launch.prepare``) on ``topology``."""
    from .validate import command

    argv = swift_command() + [command(recipe.args)] + swift_argv(recipe.args)
    if "--check_model" not in argv:
        argv += ["--check_model", "false"]  # no hub round-trips for a model we already have
    return Launch(argv, {**recipe_env(recipe), **topology_env(topology)}, [], recipe)
