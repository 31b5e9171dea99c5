"""CIDEr-D (Vedantam et al., CVPR 2015), the variant coco-caption reports as "CIDEr".

For n = 1..4 every sentence becomes a vector of n-gram counts weighted by
idf = log(#items) - log(max(1, df)), where df counts the items whose
*references* contain the n-gram.  An item's score for one n is the cosine
between hypothesis and reference vectors, with the hypothesis weights clipped
to the reference weights (so repeating a word does not pay) and a Gaussian
penalty exp(-(l_h - l_r)^2 / (2 sigma^2)) on the length difference, sigma = 6.
Scores are averaged over references and over n and multiplied by 10.  The
corpus score is the mean over items; idf is computed on the scored corpus, so
per-item scores depend on the corpus they are scored in, as in the papers.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Dict, List, Sequence, Tuple

from .ngrams import ngram_counts

Vector = Dict[tuple, float]


def _vectors(counts: Counter, idf_of, n_max: int) -> Tuple[List[Vector], List[float]]:
    vecs: List[Vector] = [{} for _ in range(n_max)]
    for gram, tf in counts.items():
        vecs[len(gram) - 1][gram] = tf * idf_of(gram)
    norms = [math.sqrt(sum(w * w for w in v.values())) for v in vecs]
    return vecs, norms


def cider_d(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]], n_max: int = 4,
            sigma: float = 6.0) -> Tuple[float, List[float]]:
    """(corpus CIDEr-D, per-item CIDEr-D) on the usual scale (a perfect corpus of distinct items ~ 10)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
    if not hyps:
        return 0.0, []
    ref_counts = [[ngram_counts(r, n_max) for r in rs] for rs in refs]
    df: Counter = Counter()
    for rcs in ref_counts:
        df.update(set(g for rc in rcs for g in rc))
    log_n = math.log(float(len(hyps)))

    def idf_of(gram: tuple) -> float:
        return log_n - math.log(max(1.0, df[gram]))

    scores = []
    for hyp, rcs, rs in zip(hyps, ref_counts, refs):
        if not rcs:
            scores.append(0.0)
            continue
        h_vecs, h_norms = _vectors(ngram_counts(hyp, n_max), idf_of, n_max)
        per_n = [0.0] * n_max
        for rc, ref in zip(rcs, rs):
            r_vecs, r_norms = _vectors(rc, idf_of, n_max)
            penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2.0 * sigma ** 2))
            for k in range(n_max):
                dot = sum(min(w, r_vecs[k].get(g, 0.0)) * r_vecs[k].get(g, 0.0) for g, w in h_vecs[k].items())
                if h_norms[k] and r_norms[k]:
                    dot /= h_norms[k] * r_norms[k]
                per_n[k] += dot * penalty
        scores.append(10.0 * sum(per_n) / n_max / len(rcs))
    return sum(scores) / len(scores), scores
