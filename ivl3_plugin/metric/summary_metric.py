"""``evaluate.Metric`` for video summaries: BLEU-1..4, METEOR, ROUGE-1/2/L/Lsum, CIDEr-D (+ BERTScore).

Works offline: instantiate it directly (``SummaryMetric()``), get it from the
plugin registry (``ivl3_summary``), or ``evaluate.load(<path of the metric
folder>)`` (see :data:`EVALUATE_SCRIPT_DIR`).  Options go to ``compute`` or
to the constructor (constructor values are the defaults of ``compute``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import datasets
import evaluate

from .scoring import ScoreOptions, score

EVALUATE_SCRIPT_DIR = Path(__file__).resolve().parent / "ivl3_summary"

_DESCRIPTION = """Captioning/summarisation metrics as papers report them: corpus BLEU-1..4 (closest reference
length), METEOR 1.5 (when java and the jar are present), ROUGE-1/2/L/Lsum F (rouge-score, best reference per
item, mean), CIDEr-D (sigma 6, clipped, x10) and optionally BERTScore from a local model. Percentages."""

_KWARGS = """Args:
    predictions: list of generated summaries (str).
    references: list of references; each a str or a list of str (several references per item).
    language: "en" (default), "zh", "ja", "ko", ... picks the default tokeniser and METEOR's language.
    tokenize: "coco" (PTB-like, lower case, no punctuation), "13a", "char", "whitespace".
    use_stemmer: Porter stemming in ROUGE (English). meteor: "auto" | True | False. meteor_jar: path.
    bertscore_model: local model dir for BERTScore (off when None). bertscore_layer: hidden layer index.
    percent: multiply by 100 (default True).
Returns: dict of plain floats: bleu1..bleu4, meteor (when run), rouge1, rouge2, rougeL, rougeLsum, cider,
    bertscore_precision/recall/f1 (when asked).
"""

_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(ScoreOptions))


class SummaryMetric(evaluate.Metric):
    """Summarisation metric; ``compute()`` returns plain floats (see ``_KWARGS``)."""

    takes_score_options = True  # ivl3 eval/report pass ScoreOptions as compute() keywords, read last_scores

    def __init__(self, *args, **kwargs):
        self.default_options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTION_NAMES}
        ScoreOptions(**self.default_options).resolved_tokenize()  # a bad option fails here, not at compute
        super().__init__(*args, **kwargs)

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Papineni 2002 (BLEU); Banerjee & Lavie 2005 (METEOR); Lin 2004 (ROUGE); "
                     "Vedantam 2015 (CIDEr); Zhang 2020 (BERTScore)",
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string")}),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge",
                           "https://github.com/tylin/coco-caption"],
        )

    def _compute(self, predictions, references, **options):
        unknown = set(options) - set(_OPTION_NAMES)
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)}; known: {', '.join(_OPTION_NAMES)}")
        merged = {**self.default_options, **options}
        result = score(predictions, references, ScoreOptions(**merged))
        self.last_scores = result  # per-item scores and notes, for callers that want them
        return result.corpus
