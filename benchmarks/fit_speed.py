#!/usr/bin/env python3
"""Fit the planner's cost model (``ivl3_plugin/recipe/speed.py``) to the GPU runs in ``speed.FIT_ROWS``.

Why: the planner ranks settings by ``speed.step_time``, whose fitted constants (``PARAMS`` below) say
they were fitted "by least squares on log samples/s" to ``FIT_ROWS``.  This script is that fit, so that a new
measured run can be added to ``FIT_ROWS`` and the constants refitted instead of tuned by hand;
``tests/test_plan_fastest.py`` checks that the shipped constants are still a local optimum of
:func:`objective`.

How: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/fit_speed.py`` (CPU, numpy only, a few seconds).  It
prints the fitted constants (paste them into speed.py), then each row's predicted and measured samples/s
with their ratio, and the largest error.  ``--shipped`` only prints the rows at the constants speed.py has
now.  Each row is timed as ``tests/test_plan_fastest.py`` does: 16 frames, 339 text tokens of which 61 are
labels, LoRA r8, ``grad_accum = 8 // micro_batch`` (global batch 8 on one GPU), ``compiled`` as measured.

The fit is Nelder-Mead on the logs of the constants (so each stays positive), restarted from its own
result until it stops improving, then polished by a coordinate search; the objective has kinks (a
micro-batch takes the larger of GPU and host time), which Nelder-Mead, needing no gradient, tolerates.
A constant the fit drives towards 0 is printed as 0 (its bound).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivl3_plugin.recipe import speed  # noqa: E402
from ivl3_plugin.recipe.arch import ARCHS  # noqa: E402
from ivl3_plugin.recipe.memory import TrainSetup  # noqa: E402

# The fitted constants: (module attribute, key in it or None for a plain number)
PARAMS: List[Tuple[str, object]] = [
    ("MATMUL_EFF", None),
    ("MATMUL_HIDDEN", None),
    ("PASSES", True), ("PASSES", False),
    ("HOST_PER_LAYER", True), ("HOST_PER_LAYER", False),
    ("HOST_PER_SAMPLE", None),
    ("HOST_LORA_FACTOR", None),
    ("GPU_LORA_FACTOR", None),
]


def names() -> List[str]:
    return [a if k is None else f"{a}[{k}]" for a, k in PARAMS]


def shipped() -> np.ndarray:
    """The constants speed.py has now, in ``PARAMS`` order."""
    return np.array([getattr(speed, a) if k is None else getattr(speed, a)[k] for a, k in PARAMS], float)


@contextlib.contextmanager
def constants(values: Sequence[float]) -> Iterator[None]:
    """speed.py's module attributes set to ``values`` for the duration (restored after)."""
    saved = {a: getattr(speed, a) for a, _ in PARAMS}
    try:
        new = {a: (dict(v) if isinstance(v, dict) else v) for a, v in saved.items()}
        for (a, k), v in zip(PARAMS, values):
            if k is None:
                new[a] = float(v)
            else:
                new[a][k] = float(v)
        for a, v in new.items():
            setattr(speed, a, v)
        yield
    finally:
        for a, v in saved.items():
            setattr(speed, a, v)


def _setup(row: dict) -> TrainSetup:
    return TrainSetup(tuner=row["tuner"], micro_batch=row["micro_batch"], frames=16, text_tokens=339,
                      label_tokens=61, checkpoint_layers=row["checkpoint_layers"], lora_rank=8)


def _step(row: dict):
    """``speed.step_time`` of one row (global batch 8 on one GPU) at speed.py's current constants."""
    return speed.step_time(ARCHS[row["size"]], _setup(row), 8 // row["micro_batch"], compiled=row["compiled"])


def predict(row: dict) -> float:
    """Predicted samples/s of one ``FIT_ROWS`` row at speed.py's current constants."""
    return _step(row).samples_per_s


def predict_kernel_s(row: dict) -> float:
    """Predicted GPU seconds of one optimizer step (``GPU_ROWS``): every micro-batch's GPU time and the
    optimizer's pass, at speed.py's current constants."""
    return _step(row).gpu_s * (8 // row["micro_batch"]) + speed.optimizer_seconds(ARCHS[row["size"]], _setup(row))


def log_errors(values: Sequence[float], rows: Sequence[dict] = None) -> np.ndarray:
    rows = speed.FIT_ROWS if rows is None else rows
    with constants(values):
        return np.array([math.log(predict(r) / r["samples_per_s"]) for r in rows])


def objective(values: Sequence[float], rows: Sequence[dict] = None) -> float:
    """Sum of squared log(predicted / measured samples/s) over ``rows`` (default ``FIT_ROWS``)."""
    return float(np.sum(log_errors(values, rows) ** 2))


def nelder_mead(f, x0: np.ndarray, step: float = 0.3, iters: int = 4000, tol: float = 1e-12) -> np.ndarray:
    """Minimise ``f`` from ``x0`` (standard reflection / expansion / contraction / shrink)."""
    n = len(x0)
    pts = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = np.argsort(vals)
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        if vals[-1] - vals[0] < tol:
            break
        centre = np.mean(pts[:-1], axis=0)
        refl = centre + (centre - pts[-1])
        fr = f(refl)
        if fr < vals[0]:
            exp = centre + 2.0 * (centre - pts[-1])
            fe = f(exp)
            pts[-1], vals[-1] = (exp, fe) if fe < fr else (refl, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = refl, fr
        else:
            con = centre + 0.5 * (pts[-1] - centre)
            fc = f(con)
            if fc < vals[-1]:
                pts[-1], vals[-1] = con, fc
            else:
                pts = [pts[0]] + [pts[0] + 0.5 * (p - pts[0]) for p in pts[1:]]
                vals = [vals[0]] + [f(p) for p in pts[1:]]
    return pts[int(np.argmin(vals))]


def coordinate_polish(f, x: np.ndarray, step: float = 0.1, min_step: float = 1e-4) -> np.ndarray:
    """Try each log-constant up and down by ``step``, halving it when nothing improves."""
    best = f(x)
    while step > min_step:
        improved = False
        for i in range(len(x)):
            for s in (step, -step):
                y = x.copy()
                y[i] += s
                fy = f(y)
                if fy < best:
                    x, best, improved = y, fy, True
        if not improved:
            step /= 2
    return x


def fit(start: Sequence[float] = None, rows: Sequence[dict] = None) -> np.ndarray:
    """Least-squares constants (``PARAMS`` order), starting from ``start`` (default: speed.py's)."""
    def f(logs):
        return objective(np.exp(logs), rows)

    x0 = shipped() if start is None else np.asarray(start, float)
    x = np.log(np.maximum(x0, 1e-3))  # a constant at its bound 0 restarts just above it
    best = f(x)
    for _ in range(20):  # restart from the last result: a fresh simplex escapes a collapsed one
        x = coordinate_polish(f, nelder_mead(f, x))
        fx = f(x)
        if fx > best - 1e-10:
            break
        best = fx
    return np.exp(x)


def round_sig(values: Sequence[float], digits: int = 3) -> np.ndarray:
    """``digits`` significant digits; a constant the fit drove towards 0 (its bound) becomes 0."""
    return np.array([0.0 if v < 1e-6 else float(f"{v:.{digits}g}") for v in values])


def report(values: Sequence[float], rows: Sequence[dict] = None) -> float:
    """Print each row's predicted vs measured; return the largest |ratio - 1|."""
    rows = speed.FIT_ROWS if rows is None else rows
    worst = 0.0
    print(f"{'size':4} {'tuner':5} {'mb':>2} {'ckpt':>4} {'comp':5} {'measured':>8} {'predicted':>9} "
          f"{'ratio':>6}  source")
    with constants(values):
        for r in rows:
            got = predict(r)
            ratio = got / r["samples_per_s"]
            worst = max(worst, abs(ratio - 1))
            print(f"{r['size']:4} {r['tuner']:5} {r['micro_batch']:>2} {r['checkpoint_layers']:>4} "
                  f"{str(r['compiled']):5} {r['samples_per_s']:8.2f} {got:9.2f} {ratio:6.3f}  {r['source']}")
        print("not fitted: GPU time of one step (kernel seconds, profiled) vs the model's GPU term, and its bound:")
        for r in speed.GPU_ROWS:
            got = predict_kernel_s(r)
            ratio = got / r["kernel_s"]
            bound = _step(r).bound
            print(f"{r['size']:4} {r['tuner']:5} {r['micro_batch']:>2} {r['checkpoint_layers']:>4} "
                  f"{str(r['compiled']):5} {r['kernel_s']:8.3f} {got:9.3f} {ratio:6.3f}  {bound}-bound; "
                  f"{r['source']}")
    print(f"max error {100 * worst:.1f} %; sum of squared log errors {objective(values, rows):.4f}; "
          f"{len(rows)} rows")
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shipped", action="store_true", help="only report the rows at speed.py's constants")
    args = ap.parse_args(argv)
    if args.shipped:
        print("speed.py's constants:")
        for n, v in zip(names(), shipped()):
            print(f"  {n} = {v:.3g}")
        report(shipped())
        return 0
    print(f"at speed.py's constants: sum of squared log errors {objective(shipped()):.4f}")
    fitted = round_sig(fit())
    print("fitted constants (3 significant digits):")
    for n, v in zip(names(), fitted):
        print(f"  {n} = {v:.3g}")
    report(fitted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
