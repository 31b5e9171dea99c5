"""Preference stage: pairs of a better and a worse summary per video, for MPO/DPO training (issue #19).

It comes after ``metric`` in the pipeline (convert → … → metric → preference): candidates sampled by
``ivl3 predict --num-samples N`` are scored against the reference with a registered metric, and each
video gives one (chosen, rejected) pair in ms-swift's RLHF format and LLaMA-Factory's ranking format.
One concern per module:

* :mod:`.inputs` — read the converted dataset and the candidates file, match them by id, and say
  per row why one cannot be used (missing frames, no reference, no candidates);
* :mod:`.scoring` — a weighted mix of per-item scores from the metric registry;
* :mod:`.selection` — which candidate is rejected (and chosen), margins, seeded tie-breaks;
* :mod:`.formats` — the output rows and files;
* :mod:`.build` — the whole run and its report (``ivl3 pairs``, docs/preference.md).
"""
