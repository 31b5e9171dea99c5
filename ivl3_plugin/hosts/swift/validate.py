"""What ms-swift would do with a recipe's keys, checked before anything starts.

ms-swift reads its arguments with ``HfArgumentParser`` (argparse, abbreviations allowed), so a typo
such as ``learning_rat=0.01`` silently becomes ``--learning_rate 0.01`` while ``--dry-run`` showed
the recipe's own rate.  Every key must therefore be exactly a field of the argument class the
command uses (``SftArguments`` for ``swift sft``, ``RLHFArguments`` when ``rlhf_type`` is set), and a
near miss is named with the closest real name.
"""
from __future__ import annotations

import dataclasses
import difflib
from functools import lru_cache
from typing import FrozenSet, List

# keys our launcher handles itself (never passed to swift as arguments)
OWN_KEYS = frozenset({"ENV"})


@lru_cache(maxsize=2)
def argument_names(rlhf: bool = False) -> FrozenSet[str]:
    """Every argument ``swift sft`` (or ``swift rlhf``) accepts, from ms-swift's own dataclasses."""
    import logging
    import warnings

    quiet = logging.getLogger("swift")
    level = quiet.level
    with warnings.catch_warnings():  # importing ms-swift's arguments logs and warns about unrelated things
        warnings.simplefilter("ignore")
        quiet.setLevel(logging.WARNING)
        try:
            from swift.arguments import RLHFArguments, SftArguments
        finally:
            quiet.setLevel(level)
    return frozenset(f.name for f in dataclasses.fields(RLHFArguments if rlhf else SftArguments))


def command(recipe_args) -> str:
    return "rlhf" if recipe_args.get("rlhf_type") else "sft"


def key_problems(recipe) -> List[str]:
    """One problem per key ms-swift does not have (prefix matching would have taken it silently)."""
    known = argument_names(command(recipe.args) == "rlhf")
    problems = []
    for key in recipe.args:
        if key in OWN_KEYS or key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(f"{recipe.where}: field '{key}': not an argument of `swift {command(recipe.args)}`{hint}")
    return problems
