"""Every side of one ``benchmarks/gpu_train.py`` run trains the same number of steps, profiled or not:
``--max_steps`` sets the learning-rate schedule, and a profiled side that ran one step more followed
another loss curve (docs/benchmarks.md, "The two loss tracks were the learning-rate schedule")."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from gpu_train import side_steps  # noqa: E402


@pytest.mark.parametrize("stacks,extra", [(False, 1), (True, 2)])
def test_every_side_runs_the_profiled_sides_steps(stacks, extra):
    sides = ["native", "plan", "planx"]
    got = {side: side_steps(6, side, sides, "plan", stacks) for side in sides}
    assert {untimed for _, untimed in got.values()} == {extra}
    assert got["plan"][0] == 7  # the first step after the timed ones is profiled
    assert got["native"][0] == got["planx"][0] == 0


def test_no_profile_no_extra_steps():
    assert side_steps(6, "plan", ["native", "plan"], None, True) == (0, 0)
    assert side_steps(6, "plan", ["native", "plan"], "ours", False) == (0, 0)  # a side not in this run
