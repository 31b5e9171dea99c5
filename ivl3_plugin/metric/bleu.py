"""BLEU as captioning papers compute it: corpus level, several references per item.

Counts are clipped by the largest count of each n-gram in any one reference;
the brevity penalty uses, per item, the reference length closest to the
hypothesis length (ties: the shorter), summed over the corpus (Papineni et al.
2002; the ``closest`` option of coco-caption, sacrebleu's default).  BLEU-k is
the geometric mean of the 1..k-gram precisions; a corpus with no matching
k-gram scores 0 (no smoothing).  Per-item scores, shown in the report, use
sacrebleu's sentence-level choices: effective order and ``exp`` smoothing.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import List, Sequence

from .ngrams import ngram_counts

MAX_N = 4


@dataclass
class BleuStats:
    """Sufficient statistics of one item (or a whole corpus, by adding items)."""

    hyp_len: int = 0
    ref_len: int = 0
    correct: List[int] = field(default_factory=lambda: [0] * MAX_N)
    total: List[int] = field(default_factory=lambda: [0] * MAX_N)

    def __iadd__(self, other: "BleuStats") -> "BleuStats":
        self.hyp_len += other.hyp_len
        self.ref_len += other.ref_len
        self.correct = [a + b for a, b in zip(self.correct, other.correct)]
        self.total = [a + b for a, b in zip(self.total, other.total)]
        return self


def item_stats(hyp: Sequence[str], refs: Sequence[Sequence[str]]) -> BleuStats:
    hyp_counts = ngram_counts(hyp, MAX_N)
    max_ref: Counter = Counter()
    for ref in refs:
        for gram, c in ngram_counts(ref, MAX_N).items():
            if c > max_ref[gram]:
                max_ref[gram] = c
    stats = BleuStats(hyp_len=len(hyp))
    stats.ref_len = min((len(r) for r in refs), key=lambda n: (abs(n - len(hyp)), n)) if refs else 0
    for gram, c in hyp_counts.items():
        k = len(gram) - 1
        stats.total[k] += c
        stats.correct[k] += min(c, max_ref[gram])
    return stats


def brevity_penalty(hyp_len: int, ref_len: int) -> float:
    if hyp_len == 0:
        return 0.0
    return 1.0 if hyp_len >= ref_len else math.exp(1.0 - ref_len / hyp_len)


def corpus_bleu(stats: BleuStats, order: int = MAX_N) -> float:
    """BLEU-``order`` in [0, 1] from corpus statistics, no smoothing."""
    if stats.hyp_len == 0 or any(stats.correct[k] == 0 for k in range(order)):
        return 0.0
    log_p = sum(math.log(stats.correct[k] / stats.total[k]) for k in range(order)) / order
    return brevity_penalty(stats.hyp_len, stats.ref_len) * math.exp(log_p)


def sentence_bleu(stats: BleuStats, order: int = MAX_N) -> float:
    """BLEU-``order`` in [0, 1] for one item: effective order, ``exp`` smoothing (as sacrebleu)."""
    if stats.hyp_len == 0:
        return 0.0
    eff = sum(1 for k in range(order) if stats.total[k] > 0)
    log_p, smooth = 0.0, 1.0
    for k in range(eff):
        if stats.correct[k] == 0:
            smooth *= 2.0
            log_p += math.log(1.0 / (smooth * stats.total[k]))
        else:
            log_p += math.log(stats.correct[k] / stats.total[k])
    return brevity_penalty(stats.hyp_len, stats.ref_len) * math.exp(log_p / eff)
