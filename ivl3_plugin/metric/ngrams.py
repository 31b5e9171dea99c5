"""N-gram counting shared by BLEU and CIDEr-D."""
from __future__ import annotations

from collections import Counter
from typing import Sequence


def ngram_counts(tokens: Sequence[str], max_n: int = 4) -> Counter:
    """Counts of every 1..max_n-gram (as tuples) in one token sequence."""
    counts: Counter = Counter()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts
