"""ms-swift eval metric: our registered ``evaluate.Metric`` behind swift's ``EvalMetrics``.

With ``--predict_with_generate true`` swift generates a response per eval
sample and hands ``compute_metrics`` the responses and the reference answers
as pickled strings packed into uint8 tensors (see ``swift.metrics.nlg``).  We
unpack them, score with the registered metric, and return its plain floats,
which swift logs as ``eval_<key>`` and ``--metric_for_best_model`` can pick.

Classes are module-level (one per metric name, created once and bound in this
module) so they pickle by reference into any worker that imports us.
Options for the metric come from the setting ``METRIC_OPTIONS`` (a JSON object,
e.g. ``{"language": "zh", "meteor": false}``; ``ivl3_plugin.settings``).
"""
from __future__ import annotations

import logging
import re
from typing import Dict

from swift.metrics.base import EvalMetrics

from ...settings import METRIC_OPTIONS

log = logging.getLogger("ivl3_plugin.swift")

OPTIONS_ENV = METRIC_OPTIONS.name
# swift's default metric_for_best_model with --predict_with_generate, and what it means for us
SWIFT_DEFAULT_BEST = {"rouge-l": "rougeL", "eval_rouge-l": "rougeL"}


def metric_options() -> dict:
    return METRIC_OPTIONS.get()


def decode_strings(batch) -> list:
    """The strings swift packed row by row into a padded uint8 tensor/array."""
    from swift.utils import Serializer

    return [Serializer.from_tensor(batch[i]) for i in range(batch.shape[0])]


class RegisteredEvalMetrics(EvalMetrics):
    """Scores generated responses with the metric registered under ``metric_name``."""

    metric_name = "ivl3_summary"

    def __init__(self, args, trainer):
        super().__init__(args, trainer)
        if not getattr(args, "predict_with_generate", False):
            raise ValueError(f"--eval_metric {self.metric_name} scores generated text: add "
                             "--predict_with_generate true (and --max_new_tokens N)")
        best = getattr(args, "metric_for_best_model", None)
        if best in SWIFT_DEFAULT_BEST:
            # swift's default names its jieba metric; point it at the same measure in ours
            args.metric_for_best_model = SWIFT_DEFAULT_BEST[best]
            log.info("metric_for_best_model %r -> %r (%s)", best, args.metric_for_best_model, self.metric_name)
        self.options = metric_options()

    def metric_class(self):
        from ...plugins import get_plugins

        return get_plugins().metrics.get(self.metric_name)

    def compute_metrics(self, eval_prediction) -> Dict[str, float]:
        predictions = decode_strings(eval_prediction.predictions)
        references = decode_strings(eval_prediction.label_ids)
        if not all(isinstance(p, str) for p in predictions + references):
            raise TypeError(f"--eval_metric {self.metric_name}: expected generated strings from "
                            "--predict_with_generate true")
        metric = self.metric_class()(keep_in_memory=True)
        result = metric.compute(predictions=[p or "" for p in predictions],
                                references=[r or "" for r in references], **self.options)
        return {k: float(v) for k, v in result.items()}


def _class_name(name: str) -> str:
    return "EvalMetrics_" + re.sub(r"\W", "_", name)


def swift_metric_class(name: str, metric_cls) -> type:
    """A module-level ``EvalMetrics`` subclass for the metric registered as ``name``."""
    cls_name = _class_name(name)
    cls = globals().get(cls_name)
    if cls is None:
        cls = type(cls_name, (RegisteredEvalMetrics,), {
            "metric_name": name, "__module__": __name__, "__qualname__": cls_name,
            "__doc__": f"ms-swift eval metric {name!r} ({getattr(metric_cls, '__name__', metric_cls)})."})
        globals()[cls_name] = cls
    return cls
