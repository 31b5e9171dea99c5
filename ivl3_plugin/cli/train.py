"""``ivl3 train RECIPE [key=value ...]``: launch ``swift sft`` on one node, many nodes, or SLURM.

RECIPE is a file or the name of a recipe in a registered recipe folder
(``ivl3 train --list``).  ``key=value`` overrides any ms-swift argument
(``dataset=[my-data] learning_rate=1e-5``; ``ENV.NAME=value`` and
``meta.NAME=value`` reach the ENV block and the metadata).  The global
batch of the recipe is kept by adjusting gradient accumulation to the GPUs
really used, unless you set the split yourself.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="launch a recipe with ms-swift (torchrun / multi-node / SLURM)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", nargs="?", help="recipe file or name (see --list)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="ms-swift arguments to change")
    p.add_argument("--list", action="store_true", help="list the recipes of every registered recipe folder")
    p.add_argument("--gpus", type=int, help="GPUs per node (default: the recipe's gpus_per_node)")
    p.add_argument("--nodes", type=int, help="nodes (default: the recipe's nodes)")
    p.add_argument("--node-rank", type=int, default=int(os.environ.get("NODE_RANK", 0)))
    p.add_argument("--master-addr", default=os.environ.get("MASTER_ADDR"))
    p.add_argument("--master-port", type=int, default=int(os.environ.get("MASTER_PORT", 29500)))
    p.add_argument("--slurm", action="store_true", help="write an sbatch script instead of launching")
    p.add_argument("--sbatch-out", help="where to write the sbatch script (default: <output_dir>/ivl3-<recipe>.sbatch)")
    p.add_argument("--sbatch-arg", action="append", default=[], help="extra '#SBATCH' line, e.g. --partition=gpu")
    p.add_argument("--submit", action="store_true", help="with --slurm: also run sbatch on the script")
    p.add_argument("--dry-run", action="store_true", help="print the exact command and environment, run nothing")
    p.add_argument("--host", choices=["swift", "llamafactory"], default="swift")
    p.add_argument("--no-validate", action="store_true", help="skip the recipe checks")
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


def _folders():
    from ..plugins import get_plugins, report_errors

    report_errors()
    return {e.name: Path(e.obj) for e in get_plugins().recipes}


def _llamafactory(recipe, overrides, topo, build_tiny):
    """LLaMA-Factory's launch for the same recipe: batch re-split and paths resolved as for swift."""
    from . import UserError
    from ..recipe.launch import recipe_env, resolve_batch, resolve_paths

    try:
        from ..hosts import llamafactory
    except ImportError as exc:
        raise UserError(f"--host llamafactory needs ivl3_plugin.hosts.llamafactory ({exc}); install LLaMA-Factory "
                        "support or use --host swift") from None
    if not hasattr(llamafactory, "launch_argv"):
        raise UserError("ivl3_plugin.hosts.llamafactory has no launch_argv(recipe, overrides); update ivl3-plugin")
    recipe = recipe.copy()
    notes = resolve_batch(recipe, overrides, topo.world)
    resolve_paths(recipe, build_tiny)
    where = {"nproc_per_node": topo.gpus_per_node, "nnodes": topo.nodes, "node_rank": topo.node_rank,
             "master_port": topo.master_port}
    if topo.master_addr:
        where["master_addr"] = topo.master_addr
    argv, env = llamafactory.launch_argv(recipe.args, where)
    return argv, {**recipe_env(recipe), **env}, notes, recipe  # the recipe's ENV block (e.g. CPU-only) too


def run(args) -> int:
    from . import UserError
    from ..recipe.launch import Launch, Topology, list_recipes, load, swift_launch
    from ..recipe.recipe import RecipeError, apply_overrides, parse_overrides, validate

    folders = _folders()
    if args.list:
        for name, path in list_recipes(folders).items():
            from ..recipe.recipe import load_recipe

            meta = load_recipe(path).meta
            print(f"{name:24} {meta.get('description', '')}  [{path}]")
        return 0
    if not args.recipe:
        raise UserError("name a recipe (file or name); `ivl3 train --list` shows them")
    try:
        base = load(args.recipe, folders)
        overrides = parse_overrides(args.overrides)
        recipe = apply_overrides(base, overrides)
        topo = Topology(gpus_per_node=args.gpus or int(recipe.meta.get("gpus_per_node", 1)),
                        nodes=args.nodes or int(recipe.meta.get("nodes", 1)), node_rank=args.node_rank,
                        master_addr=args.master_addr, master_port=args.master_port)
        if topo.nodes > 1 and args.slurm:
            topo.master_addr = topo.master_addr or "$MASTER_ADDR"
        if not args.no_validate:
            problems = validate(recipe, world_size=topo.world)
            problems = [p for p in problems if "batch maths" not in p]  # the launch re-splits the batch below
            if problems:
                raise UserError("invalid recipe:\n  " + "\n  ".join(problems))
        if args.host == "llamafactory":
            argv, env, notes, resolved = _llamafactory(recipe, overrides, topo, not args.dry_run)
            launch = Launch(list(argv), dict(env), notes, resolved)
        else:
            launch = swift_launch(recipe, overrides, topo, build_tiny=not args.dry_run)
    except RecipeError as exc:
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
    env = {**os.environ, **{k: v for k, v in launch.env.items() if k not in os.environ or k in _FORCED}}
    return subprocess.call(launch.argv, env=env)


# torchrun settings come from our flags and always win; the recipe's ENV block yields to the caller's env
_FORCED = ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


def _slurm(args, launch, topo, recipe) -> int:
    from ..recipe.launch import sbatch_script

    out_dir = Path(str(launch.recipe.args.get("output_dir") or "."))
    script = Path(args.sbatch_out) if args.sbatch_out else out_dir / f"ivl3-{recipe.name}.sbatch"
    text = sbatch_script(launch, topo, recipe.name, script, sbatch_args=args.sbatch_arg)
    if args.dry_run:
        print(text)
        return 0
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(text)
    script.chmod(0o755)
    print(f"wrote {script}")
    if args.submit:
        return subprocess.call(["sbatch", str(script)])
    print(f"submit with: sbatch {script}")
    return 0
