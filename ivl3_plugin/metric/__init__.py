"""Metric stage: score predictions (corpus + per item), produce them with ``swift infer``, report them.

``SummaryMetric`` (an ``evaluate.Metric``) needs the ``metrics`` extra; :func:`score`
is the engine every entry point shares.  Modules import their heavy
dependencies lazily so the core package imports without them.
"""
from __future__ import annotations

METRIC_NAME = "ivl3_summary"


def __getattr__(name):
    if name == "SummaryMetric":
        from .summary_metric import SummaryMetric

        return SummaryMetric
    if name in ("score", "ScoreOptions", "Scores"):
        from . import scoring

        return getattr(scoring, name)
    raise AttributeError(name)
