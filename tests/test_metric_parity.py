"""Our metric equals the reference implementations run directly (rouge-score, sacrebleu, coco-caption)."""
from __future__ import annotations

import math
import shutil

import pytest

from ivl3_plugin.metric.scoring import score
from ivl3_plugin.metric.tokenize import coco_tokenize
from test_metric_fixture import summary_pairs

TOL = 1e-6


@pytest.fixture(scope="module")
def corpus():
    preds, refs = summary_pairs()
    assert len(preds) >= 50 and sum(len(r) > 1 for r in refs) >= 10
    return preds, refs


@pytest.fixture(scope="module")
def ours(corpus):
    preds, refs = corpus
    return score(preds, refs, meteor=False)  # METEOR (slow, Java) has its own test


def _tok(text):
    return " ".join(coco_tokenize(text))


def test_bleu_matches_sacrebleu_corpus_and_sentence(corpus, ours):
    import sacrebleu

    preds, refs = corpus
    hyps = [_tok(p) for p in preds]
    width = max(len(r) for r in refs)
    streams = [[_tok(r[k]) if k < len(r) else None for r in refs] for k in range(width)]
    for k in range(1, 5):
        ref_bleu = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none", force=True,
                                          max_ngram_order=k).corpus_score(hyps, streams)
        assert ours.corpus[f"bleu{k}"] == pytest.approx(ref_bleu.score, abs=TOL), k
    for i, (h, rs) in enumerate(zip(hyps, refs)):
        sent = sacrebleu.sentence_bleu(h, [_tok(r) for r in rs], tokenize="none").score
        assert ours.per_item[i]["bleu4"] == pytest.approx(sent, abs=TOL), (i, preds[i], rs)


def test_rouge_matches_rouge_score(corpus, ours):
    from rouge_score import rouge_scorer

    preds, refs = corpus
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"])
    direct = [scorer.score_multi(r, p) for p, r in zip(preds, refs)]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        mean = 100 * sum(d[key].fmeasure for d in direct) / len(direct)
        assert ours.corpus[key] == pytest.approx(mean, abs=TOL), key
        for i, d in enumerate(direct):
            assert ours.per_item[i][key] == pytest.approx(100 * d[key].fmeasure, abs=TOL)


def _coco_inputs(corpus):
    preds, refs = corpus
    res = {i: [_tok(p)] for i, p in enumerate(preds)}
    gts = {i: [_tok(r) for r in rs] for i, rs in enumerate(refs)}
    return gts, res


def test_cider_d_and_bleu_match_pycocoevalcap(corpus, ours):
    pytest.importorskip("pycocoevalcap", reason="pycocoevalcap (test-only oracle) is not installed")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts, res = _coco_inputs(corpus)
    c_corpus, c_items = Cider().compute_score(gts, res)
    assert ours.corpus["cider"] == pytest.approx(100 * c_corpus, abs=TOL)
    for i, v in enumerate(c_items):
        assert ours.per_item[i]["cider"] == pytest.approx(100 * v, abs=TOL), i
    b_corpus, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        assert ours.corpus[f"bleu{k + 1}"] == pytest.approx(100 * b_corpus[k], abs=TOL), k


@pytest.mark.skipif(shutil.which("java") is None, reason="no java: METEOR 1.5 needs a Java runtime")
def test_meteor_matches_pycocoevalcap(corpus):
    pytest.importorskip("pycocoevalcap", reason="pycocoevalcap (test-only oracle) is not installed")
    from pycocoevalcap.meteor.meteor import Meteor

    ours = score(*corpus, meteor=True)
    gts, res = _coco_inputs(corpus)
    m_corpus, m_items = Meteor().compute_score(gts, res)
    assert ours.corpus["meteor"] == pytest.approx(100 * m_corpus, abs=TOL)
    for i, v in enumerate(m_items):
        assert ours.per_item[i]["meteor"] == pytest.approx(100 * v, abs=TOL), i


def test_cider_d_hand_computed():
    # N = 2 items, every n-gram in one item's refs only -> idf = log 2 for all; see docs/metrics.md.
    # item 1: hyp "a a" vs ref "a b": unigram cos with clipping = min(2L, L)*L / (2L * sqrt(2) L) = 1/(2 sqrt 2),
    #         bigram (a,a) unseen -> 0, no 3/4-grams, equal lengths -> 10 * (1/(2 sqrt 2)) / 4.
    # item 2: hyp "c" vs ref "c": unigram cos 1 -> 10 * 1 / 4.
    from ivl3_plugin.metric.cider import cider_d

    corpus_score, items = cider_d([["a", "a"], ["c"]], [[["a", "b"]], [["c"]]])
    assert items[0] == pytest.approx(10 / (8 * math.sqrt(2)), abs=1e-12)
    assert items[1] == pytest.approx(2.5, abs=1e-12)
    assert corpus_score == pytest.approx((items[0] + items[1]) / 2, abs=1e-12)
    # length penalty: one extra word (sigma 6) multiplies every n-gram term by exp(-1/72)
    _, longer = cider_d([["x", "y", "z"], ["c"]], [[["x", "y"]], [["c"]]])
    _, same = cider_d([["x", "y"], ["c"]], [[["x", "y"]], [["c"]]])
    assert same[0] == pytest.approx(10 * 2 / 4, abs=1e-12)  # unigram + bigram cos 1, no 3/4-grams
    assert 0 < longer[0] < same[0]
