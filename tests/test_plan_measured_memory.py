"""The planner against every peak the plain loop measured on GPUs (``benchmarks/recipe_memory.py``'s JSON in
``benchmarks/results/``): each row, re-planned with today's ``memory.estimate``, stays within +-20 %.

Why: those runs are the planner's evidence (docs/benchmarks.md, *Recipe memory*, *Planner*); a change to the
memory model that moves any of them out of range fails here instead of going unnoticed."""
from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
# stage3_max_reuse_distance 0: a DeepSpeed setting the recipes do not use and the planner does not model
NOT_PLANNED = {"recipe_memory_z3reuse0_h200x2.json"}


@lru_cache(maxsize=None)
def _recipe_memory():
    spec = importlib.util.spec_from_file_location("recipe_memory", RESULTS.parent / "recipe_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows():
    for path in sorted(RESULTS.glob("recipe_memory*.json")):
        if path.name in NOT_PLANNED:
            continue
        data = json.loads(path.read_text())
        for row in data["rows"]:
            if row.get("measured") and not row.get("error") and "memory" in row.get("kind", ["memory"]):
                yield pytest.param(data["settings"], row, id=f"{path.stem}:{row['size']}-{row['tuner']}-z{row['zero']}"
                                   f"-x{row['world']}-ckpt{row.get('ckpt', 'all')}")


@lru_cache(maxsize=None)
def _arch(size: str, folder: str):
    """The planner's view of the run's model: read from the config.json the script wrote, as it did."""
    from ivl3_plugin.recipe.arch import ARCHS, arch_from_config, hf_config_dict

    path = Path(folder) / size
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(hf_config_dict(ARCHS[size], 151667)))
    return arch_from_config(path, name=size)


def test_every_committed_run_is_checked():
    rows = list(_rows())
    assert len(rows) >= 50
    assert {r.values[1].get("ckpt", "all") for r in rows} >= {"all", "half", "none"}
    assert {r.values[1]["size"] for r in rows} >= {"1B", "2B", "8B", "38B", "78B"}


@pytest.mark.parametrize("settings, row", list(_rows()))
def test_planned_peak_within_20_percent_of_the_measured(settings, row, tmp_path_factory):
    from ivl3_plugin.recipe.memory import estimate

    arch = _arch(row["size"], str(tmp_path_factory.getbasetemp() / "archs"))
    planned = estimate(arch, _recipe_memory().setup_for(row, settings, arch)).total
    assert 0.8 <= row["measured"] / planned <= 1.2, (row["measured"] / planned, row["measured"], planned)
