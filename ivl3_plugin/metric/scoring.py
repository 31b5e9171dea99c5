"""One call that scores a corpus of summaries with every metric, corpus-level and per item.

This is the engine behind the ``evaluate`` metric, the ms-swift eval metric,
``ivl3 eval`` and the HTML report, so all four print the same numbers.
Scores are percentages (x100), the way papers print BLEU-4 / METEOR /
ROUGE-L / CIDEr (a CIDEr of 0.52 in coco-caption's output is printed 52.0).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

from . import bleu as _bleu
from .cider import cider_d
from .rouge import ROUGE_TYPES, rouge_scores
from .tokenize import get_tokenizer

log = logging.getLogger("ivl3_plugin.metric")

CJK_LANGUAGES = {"zh", "ja", "ko"}
METEOR_LANGUAGES = {"en", "cz", "de", "es", "fr"}
PER_ITEM_KEYS = ("bleu4", "meteor", "rougeL", "cider", "bertscore_f1")

References = Union[str, Sequence[str]]


@dataclass
class ScoreOptions:
    """How to score; every field is also a keyword of ``compute``."""

    language: str = "en"
    tokenize: Optional[str] = None  # None: "coco" for English, "char" for zh/ja/ko, else "13a"
    use_stemmer: bool = False  # rouge-score's Porter stemmer (English only)
    meteor: Union[str, bool] = "auto"  # "auto": when java + jar exist; True: required; False: never
    meteor_jar: Optional[str] = None
    bertscore_model: Optional[str] = None  # local encoder dir; None: no BERTScore
    bertscore_layer: Optional[int] = None
    percent: bool = True

    def resolved_tokenize(self) -> str:
        if self.tokenize:
            get_tokenizer(self.tokenize)  # fail early on a typo
            return self.tokenize
        if self.language == "en":
            return "coco"
        return "char" if self.language in CJK_LANGUAGES else "13a"


@dataclass
class Scores:
    corpus: Dict[str, float]
    per_item: List[Dict[str, float]]
    notes: List[str] = field(default_factory=list)  # e.g. why METEOR was skipped


def normalise_references(references: Sequence[References]) -> List[List[str]]:
    out = []
    for i, refs in enumerate(references):
        if refs is None:
            raise ValueError(f"reference {i} is missing")
        if isinstance(refs, str):
            out.append([refs])
        else:
            refs = [r for r in refs if r is not None]
            if not all(isinstance(r, str) for r in refs):
                raise ValueError(f"reference {i} must be a string or a list of strings, got {refs!r}")
            out.append(list(refs))
    return out


def score(predictions: Sequence[str], references: Sequence[References], options: Optional[ScoreOptions] = None,
          **kwargs) -> Scores:
    """Score predictions against one or several references each."""
    opts = options or ScoreOptions(**kwargs)
    if options is not None and kwargs:
        raise TypeError("pass either options= or keyword options, not both")
    predictions = ["" if p is None else str(p) for p in predictions]
    refs = normalise_references(references)
    if len(predictions) != len(refs):
        raise ValueError(f"{len(predictions)} predictions but {len(refs)} references")
    scale = 100.0 if opts.percent else 1.0
    tok_name = opts.resolved_tokenize()
    tok = get_tokenizer(tok_name)
    hyp_tokens = [tok(p) for p in predictions]
    ref_tokens = [[tok(r) for r in rs] for rs in refs]
    n = len(predictions)
    per_item: List[Dict[str, float]] = [{} for _ in range(n)]
    corpus: Dict[str, float] = {}
    notes: List[str] = []

    # BLEU-1..4, corpus level
    total = _bleu.BleuStats()
    for i, (h, rs) in enumerate(zip(hyp_tokens, ref_tokens)):
        st = _bleu.item_stats(h, rs)
        total += st
        per_item[i]["bleu4"] = scale * _bleu.sentence_bleu(st)
    for k in range(1, 5):
        corpus[f"bleu{k}"] = scale * _bleu.corpus_bleu(total, k) if n else 0.0

    # METEOR (optional, Java)
    if opts.meteor not in (False, "off", "false", "no"):
        from .meteor import find_meteor, meteor_scores

        jar, why = find_meteor(opts.meteor_jar)
        if jar is not None and opts.language not in METEOR_LANGUAGES:
            jar, why = None, f"METEOR 1.5 has no language {opts.language!r}"
        if jar is None:
            if opts.meteor not in ("auto", None):
                raise RuntimeError(f"METEOR requested but unavailable: {why}")
            notes.append(f"METEOR skipped: {why}")
        else:
            joined = [" ".join(h) for h in hyp_tokens]
            joined_refs = [[" ".join(r) for r in rs] for rs in ref_tokens]
            m_corpus, m_items = meteor_scores(joined, joined_refs, jar, language=opts.language)
            corpus["meteor"] = scale * m_corpus
            for i, v in enumerate(m_items):
                per_item[i]["meteor"] = scale * v

    # ROUGE (rouge-score's tokeniser for English, ours otherwise)
    rouge_tok = None if opts.language == "en" and not opts.tokenize else tok_name
    r_items = rouge_scores(predictions, refs, use_stemmer=opts.use_stemmer, tokenizer=rouge_tok)
    for key in ROUGE_TYPES:
        corpus[key] = scale * sum(r[key] for r in r_items) / n if n else 0.0
    for i, r in enumerate(r_items):
        per_item[i].update({k: scale * v for k, v in r.items()})

    # CIDEr-D
    c_corpus, c_items = cider_d(hyp_tokens, ref_tokens)
    corpus["cider"] = scale * c_corpus
    for i, v in enumerate(c_items):
        per_item[i]["cider"] = scale * v

    # BERTScore (optional, local model)
    if opts.bertscore_model:
        from .bertscore import bertscore

        b_items = bertscore(predictions, refs, opts.bertscore_model, layer=opts.bertscore_layer)
        for key in ("bertscore_precision", "bertscore_recall", "bertscore_f1"):
            corpus[key] = scale * sum(b[key] for b in b_items) / n if n else 0.0
        for i, b in enumerate(b_items):
            per_item[i].update({k: scale * v for k, v in b.items()})

    for note in notes:
        log.info("%s", note)
    return Scores({k: float(v) for k, v in corpus.items()}, per_item, notes)
