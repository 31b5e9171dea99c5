"""ROUGE-1/2/L/Lsum with Google's ``rouge-score`` (the package behind most reported ROUGE).

Each item takes the reference with the best F-measure (``score_multi``), the
corpus score is the mean F-measure over items (what ``evaluate``'s rouge
reports with ``use_aggregator=False`` then averaged).  rouge-score's own
tokeniser keeps only ASCII letters and digits, so for other scripts a
tokeniser from :mod:`.tokenize` is passed in.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]], use_stemmer: bool = False,
                 tokenizer: Optional[str] = None) -> List[Dict[str, float]]:
    """Per-item F-measures in [0, 1] for every ROUGE type."""
    from rouge_score import rouge_scorer

    from .tokenize import RougeTokenizerAdapter

    scorer = rouge_scorer.RougeScorer(
        list(ROUGE_TYPES), use_stemmer=use_stemmer,
        tokenizer=RougeTokenizerAdapter(tokenizer) if tokenizer else None,
    )
    out = []
    for hyp, rs in zip(hyps, refs):
        if not rs:
            out.append({k: 0.0 for k in ROUGE_TYPES})
            continue
        best = scorer.score_multi(list(rs), hyp)
        out.append({k: float(best[k].fmeasure) for k in ROUGE_TYPES})
    return out
