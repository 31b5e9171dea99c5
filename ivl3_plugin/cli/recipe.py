"""``ivl3 recipe``: check recipes, and turn official InternVL script arguments into one."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("recipe", help="check recipes; convert InternVL fine-tuning script arguments to a recipe")
    rsub = p.add_subparsers(dest="recipe_command", metavar="ACTION")
    c = rsub.add_parser("check", help="validate recipe files or names (fields, types, batch maths)")
    c.add_argument("recipes", nargs="+", help="recipe files or names")
    c.add_argument("--gpus", type=int, help="GPUs per node the batch maths should assume")
    c.add_argument("--nodes", type=int, default=None)
    c.add_argument("--host", default="swift", help="check the keys against this host's own arguments (default swift)")
    c.set_defaults(func=run_check)
    f = rsub.add_parser("from-internvl-args", help="translate internvl_chat_finetune.py flags into a recipe",
                        description="Example: ivl3 recipe from-internvl-args -o my.yaml -- --model_name_or_path "
                                    "OpenGVLab/InternVL3-8B --freeze_llm True --use_llm_lora 16 "
                                    "--deepspeed zero_stage1_config.json")
    f.add_argument("-o", "--out", help="write the recipe here (default: print it)")
    f.add_argument("--dataset", default="ivl3-demo", help="dataset name for the recipe (default: ivl3-demo)")
    f.add_argument("--gpus", type=int, help="GPUs per node the script ran on (recorded as metadata)")
    f.add_argument("--nodes", type=int, help="nodes (metadata)")
    f.add_argument("flags", nargs=argparse.REMAINDER, help="the InternVL flags (after --), or one quoted string")
    f.set_defaults(func=run_from_internvl)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_check(args) -> int:
    from . import UserError
    from ..hosts import get_host
    from ..hosts.protocol import HostError
    from ..plugins import get_plugins
    from ..recipe.config import RecipeError, load_recipe, validate
    from ..recipe.launch import find_recipe

    try:
        host = get_host(args.host)
    except HostError as exc:
        raise UserError(str(exc)) from None
    folders = {e.name: Path(e.obj) for e in get_plugins().recipes}
    bad = 0
    for item in args.recipes:
        try:
            recipe = load_recipe(find_recipe(item, folders))
        except RecipeError as exc:
            raise UserError(str(exc)) from None
        world = None
        if args.gpus or args.nodes:
            world = (args.gpus or int(recipe.meta.get("gpus_per_node", 1))) * (args.nodes or int(recipe.meta.get("nodes", 1)))
        problems = validate(recipe, world_size=world) + host.validate(recipe)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{recipe.where}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        bad += bool(problems)
    return 1 if bad else 0


def run_from_internvl(args) -> int:
    from . import UserError
    from ..recipe.internvl_args import from_internvl_args
    from ..recipe.config import RecipeError, dump_recipe, validate

    flags = [f for f in args.flags if f != "--"] if args.flags[:1] == ["--"] else list(args.flags)
    if not flags:
        raise UserError("give the InternVL flags after --, e.g. -- --model_name_or_path OpenGVLab/InternVL3-8B")
    try:
        recipe, notes = from_internvl_args(flags, dataset=args.dataset)
    except RecipeError as exc:
        raise UserError(str(exc)) from None
    if args.gpus:
        recipe.meta["gpus_per_node"] = args.gpus
    if args.nodes:
        recipe.meta["nodes"] = args.nodes
    if args.gpus:
        a = recipe.args
        recipe.meta["global_batch"] = (int(a.get("per_device_train_batch_size", 1)) * args.gpus * (args.nodes or 1)
                                       * int(a.get("gradient_accumulation_steps", 1)))
    problems = validate(recipe)
    if problems:
        raise UserError("the translated recipe is invalid:\n  " + "\n  ".join(problems))
    text = dump_recipe(recipe, "Translated from InternVL fine-tuning script arguments by "
                               "`ivl3 recipe from-internvl-args`.\nRun: ivl3 train <this file>")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0
