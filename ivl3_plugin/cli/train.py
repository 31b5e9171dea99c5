"""``ivl3 train RECIPE [key=value ...]``: launch a recipe on one node, many nodes, or SLURM, with any host.

RECIPE is a file or the name of a recipe in a registered recipe folder
(``ivl3 train --list``).  ``key=value`` overrides any host argument
(``dataset=[my-data] learning_rate=1e-5``; ``ENV.NAME=value`` and
``meta.NAME=value`` reach the ENV block and the metadata; ``template.FIELD=value`` a run
setting of the recipe's template).  The global batch of the recipe is kept by adjusting
gradient accumulation to the GPUs really used, unless you set the split yourself.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from ..hosts import DEFAULT_HOST, host_names

    p = sub.add_parser("train", help="launch a recipe (ms-swift by default; torchrun / multi-node / SLURM)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", nargs="?", help="recipe file or name (see --list)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="host arguments to change")
    p.add_argument("--list", action="store_true", help="list the recipes of every registered recipe folder")
    p.add_argument("--gpus", type=int, help="GPUs per node (default: the recipe's gpus_per_node)")
    p.add_argument("--nodes", "--nnodes", type=int, help="nodes (default: the recipe's nodes)")
    p.add_argument("--node-rank", type=int, help="this node's rank (multi-node; default $NODE_RANK or 0)")
    p.add_argument("--master-addr", help="the rank-0 node's address (multi-node; default $MASTER_ADDR)")
    p.add_argument("--master-port", type=int, help="default $MASTER_PORT or 29500")
    p.add_argument("--slurm", action="store_true", help="write an sbatch script instead of launching")
    p.add_argument("--sbatch-out", help="where to write the sbatch script (default: <output_dir>/ivl3-<recipe>.sbatch)")
    p.add_argument("--sbatch-arg", action="append", default=[], help="extra '#SBATCH' line, e.g. --partition=gpu")
    p.add_argument("--submit", action="store_true", help="with --slurm: also run sbatch on the script")
    p.add_argument("--dry-run", action="store_true", help="print the exact command and environment, run nothing")
    p.add_argument("--host", choices=host_names(), default=DEFAULT_HOST)
    p.add_argument("--no-validate", action="store_true", help="skip the recipe checks")
    p.add_argument("--plan", action="store_true",
                   help="let the planner choose micro-batch, accumulation, ZeRO stage and gradient checkpointing "
                        "(all, none or the first k layers) for the fastest run that fits these GPUs; "
                        "key=value overrides of the same fields still win")
    from .plan import gib

    p.add_argument("--gpu-memory", type=gib, default=None,
                   help="with --plan: GiB per GPU (default: read from this machine's GPUs with torch.cuda)")
    p.set_defaults(func=run)
    p.parse_known_args = _intermixed(p)


def _intermixed(parser):
    """Let key=value overrides come after options too (``ivl3 train R --dry-run lr=1e-5``)."""
    base = type(parser).parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, extra = base(parser, args, namespace)
        stray = [a for a in extra if not a.startswith("-") and "=" in a]
        ns.overrides = list(getattr(ns, "overrides", None) or []) + stray
        return ns, [a for a in extra if a not in stray]

    return parse_known_args


def recipe_folders():
    from ..plugins import get_plugins, report_errors

    report_errors()
    return {e.name: Path(e.obj) for e in get_plugins().recipes}


def run(args) -> int:
    from . import UserError
    from ..hosts.protocol import HostError
    from ..hosts.training import launch_environment, training_launch
    from ..recipe.config import RecipeError, apply_overrides, load_recipe, parse_overrides
    from ..recipe.launch import list_recipes, load
    from ..settings import SettingError

    folders = recipe_folders()
    if args.list:
        for name, path in list_recipes(folders).items():
            print(f"{name:24} {load_recipe(path).meta.get('description', '')}  [{path}]")
        return 0
    if not args.recipe:
        raise UserError("name a recipe (file or name); `ivl3 train --list` shows them")
    try:
        overrides = parse_overrides(args.overrides)
        recipe = apply_overrides(load(args.recipe, folders), overrides)
        topo = topology(args, recipe)
        if args.plan:
            recipe = planned(recipe, overrides, topo, args)
        elif args.gpu_memory is not None:
            raise UserError("--gpu-memory is for --plan")
        launch = training_launch(recipe, overrides, topo, args.host, check=not args.no_validate,
                                 build_tiny=not args.dry_run)
    except (RecipeError, HostError, SettingError) as exc:
        raise UserError(str(exc)) from None
    for note in launch.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.slurm:
        return _slurm(args, launch, topo, recipe)
    if args.dry_run:
        print("environment:")
        for k, v in launch.env.items():
            print(f"  {k}={v}")
        print("argv:")
        for a in launch.argv:
            print(f"  {a}")
        print("command:")
        print(f"  {launch.render()}")
        return 0
    print(f"ivl3 train: {launch.render()}", file=sys.stderr, flush=True)
    return subprocess.call(launch.argv, env=launch_environment(launch))


def gpu_memory_here() -> float:
    """The smallest GPU's memory on this machine in GiB (torch.cuda, in a child process so this launcher
    holds no CUDA context during training); UserError when no GPU is visible."""
    import subprocess as sp

    from . import UserError

    code = ("import torch\nn = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
            "print(min((torch.cuda.get_device_properties(i).total_memory for i in range(n)), default=0))")
    try:
        out = sp.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        total = int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0
    except (OSError, ValueError, sp.TimeoutExpired):
        total = 0
    if total <= 0:
        raise UserError("--plan needs the GPU memory: no GPU is visible on this machine (torch.cuda); "
                        "pass --gpu-memory GiB (80 for an A100/H100 80GB, 139 for an H200)")
    return total / 2 ** 30


def planned(recipe, overrides, topo, args):
    """The recipe with the planner's fastest setting for ``topo`` applied; the user's key=value wins."""
    from . import UserError
    from ..recipe.plan_apply import PLANNED_KEYS, apply_plan, plan_for_recipe

    gib = args.gpu_memory if args.gpu_memory is not None else gpu_memory_here()
    plan = plan_for_recipe(recipe, topo.gpus_per_node, topo.nodes, gib)
    if not plan.fits:
        raise UserError(f"--plan: nothing fits {topo.world} GPU(s) of {gib:.1f} GiB: {'; '.join(plan.notes)}")
    out = recipe.copy()
    apply_plan(out.args, plan)
    pinned = [k for k in PLANNED_KEYS if k in overrides]
    for key in pinned:
        if overrides[key] is None:
            out.args.pop(key, None)
        else:
            out.args[key] = overrides[key]
    print(f"note: --plan for {topo.world} GPU(s) of {gib:.1f} GiB: {plan.tuner}, {plan.deepspeed or 'no deepspeed'}, "
          f"per-device {plan.micro_batch} x accumulation {plan.grad_accum}, checkpointing {plan.checkpointing}; "
          f"predicted {plan.memory.total / 2 ** 30:.1f} GiB per GPU, {plan.time.samples_per_s:.2f} samples/s"
          + (f" (your {', '.join(pinned)} kept)" if pinned else ""), file=sys.stderr)
    return out


def topology(args, recipe):
    """GPUs and nodes from the flags (0 is refused, not read as 'unset'), else the recipe; ranks from the flags,
    else torchrun's variables (declared in ivl3_plugin.settings)."""
    from ..recipe.launch import Topology
    from ..settings import MASTER_ADDR, MASTER_PORT, NODE_RANK

    nodes = args.nodes if args.nodes is not None else int(recipe.meta.get("nodes", 1))
    master = args.master_addr or MASTER_ADDR.get() or ("$MASTER_ADDR" if nodes > 1 and args.slurm else None)
    return Topology(gpus_per_node=args.gpus if args.gpus is not None else int(recipe.meta.get("gpus_per_node", 1)),
                    nodes=nodes, node_rank=args.node_rank if args.node_rank is not None else NODE_RANK.get(),
                    master_addr=master,
                    master_port=args.master_port if args.master_port is not None else MASTER_PORT.get())


def _slurm(args, launch, topo, recipe) -> int:
    from ..recipe.slurm import sbatch_script
    from . import UserError
    from ..recipe.config import RecipeError
    from ..shared.atomic import write_text_atomic

    out_dir = Path(str(launch.recipe.args.get("output_dir") or "."))
    script = Path(args.sbatch_out) if args.sbatch_out else out_dir / f"ivl3-{recipe.name}.sbatch"
    try:
        text = sbatch_script(launch, topo, recipe.name, script, sbatch_args=args.sbatch_arg)
    except RecipeError as exc:
        raise UserError(str(exc)) from None
    if args.dry_run:
        print(text)
        return 0
    write_text_atomic(script, text)
    script.chmod(0o755)
    print(f"wrote {script}")
    if args.submit:
        return subprocess.call(["sbatch", str(script)])
    print(f"submit with: sbatch {script}")
    return 0
