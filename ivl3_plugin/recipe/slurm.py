"""An sbatch script for any host's :class:`~ivl3_plugin.recipe.launch.Launch` over several nodes.

One task per node; each node's launcher (torchrun, started by the host) reads its rank from
``SLURM_NODEID``.  Every argument is quoted, and ``--sbatch-arg`` values may not carry a newline
(a newline would become a line of shell in the script).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import List, Optional

from .config import RecipeError
from .launch import Launch, Topology

TORCHRUN_ENV = ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")

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
# one task per node; each node's torchrun (started by the host) gets its rank from SLURM_NODEID
srun --kill-on-bad-exit=1 bash -c 'export NODE_RANK="$SLURM_NODEID"; exec "$@"' ivl3-node {command}
"""


def sbatch_script(launch: Launch, topo: Topology, name: str, script: Path, cpus_per_task: int = 16,
                  sbatch_args: Optional[List[str]] = None) -> str:
    """An sbatch script for ``launch`` over ``topo.nodes`` nodes (every argument quoted)."""
    for a in sbatch_args or []:
        if "\n" in a or "\r" in a:
            raise RecipeError(f"--sbatch-arg {a!r} holds a line break: give one #SBATCH option per --sbatch-arg")
    out = (launch.recipe.args.get("output_dir") if launch.recipe else None) or "."
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in launch.env.items() if k not in TORCHRUN_ENV)
    extra = "".join(f"#SBATCH {a}\n" for a in (sbatch_args or []))
    return SBATCH.format(name=name, script=script, nodes=topo.nodes, gpus=topo.gpus_per_node, cpus=cpus_per_task,
                         log=Path(out) / "slurm-%j.out", extra=extra, port=topo.master_port, exports=exports,
                         command=" ".join(shlex.quote(a) for a in launch.argv))
