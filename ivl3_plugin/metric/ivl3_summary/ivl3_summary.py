"""Entry script for ``evaluate.load("<this folder>")``: the ivl3 summarisation metric, offline."""
import evaluate  # noqa: F401  (evaluate checks the script's imports)

from ivl3_plugin.metric.summary_metric import SummaryMetric


class Ivl3Summary(SummaryMetric):
    """Same metric as ``ivl3_plugin.metric.SummaryMetric`` (evaluate needs a class defined here)."""
