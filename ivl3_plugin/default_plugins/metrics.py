"""Built-in summarisation metric ``ivl3_summary`` (BLEU, METEOR, ROUGE, CIDEr-D; see ivl3_plugin.metric).

Registered as a lazy reference: importing ``evaluate`` takes seconds, and most
processes that load plugins (``ivl3 plugins``, every swift rank) never score.
"""
import importlib.util

from .. import hookimpl
from ..plugins.registry import LazyRef


@hookimpl
def register_metrics(register):
    if importlib.util.find_spec("evaluate") is None:  # the `metrics` extra is not installed
        return
    from ..metric import METRIC_NAME

    register(METRIC_NAME, LazyRef("ivl3_plugin.metric.summary_metric:SummaryMetric"))
