"""Built-in summarisation metric ``ivl3_summary`` (BLEU, METEOR, ROUGE, CIDEr-D; see ivl3_plugin.metric)."""
from .. import hookimpl


@hookimpl
def register_metrics(register):
    try:
        from ..metric.summary_metric import SummaryMetric
    except ImportError:  # the `metrics` extra (evaluate, rouge-score, sacrebleu) is not installed
        return
    from ..metric import METRIC_NAME

    register(METRIC_NAME, SummaryMetric)
