"""The ``ivl3_summary`` evaluate.Metric: construction, loading offline, add/add_batch, options."""
from __future__ import annotations

import shutil

import pytest

from ivl3_plugin.metric.summary_metric import EVALUATE_SCRIPT_DIR, SummaryMetric
from test_metric_fixture import summary_pairs

KEYS = {"bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougeL", "rougeLsum", "cider"}


@pytest.fixture(scope="module")
def pairs():
    preds, refs = summary_pairs()
    return preds[:20], refs[:20]


@pytest.fixture(scope="module")
def one_shot(pairs):
    return SummaryMetric().compute(predictions=pairs[0], references=pairs[1], meteor=False)


def test_compute_returns_plain_floats_in_percent(one_shot, pairs):
    assert set(one_shot) == KEYS
    assert all(type(v) is float for v in one_shot.values())
    assert all(0.0 <= v <= 100.0 for k, v in one_shot.items() if k != "cider")
    ones = SummaryMetric().compute(predictions=pairs[0], references=pairs[1], meteor=False, percent=False)
    for k in KEYS:
        assert ones[k] == pytest.approx(one_shot[k] / 100, abs=1e-9)


def test_add_and_add_batch_accumulate_like_one_call(one_shot, pairs):
    preds, refs = pairs
    m = SummaryMetric(meteor=False)  # constructor options are compute's defaults
    m.add_batch(predictions=preds[:7], references=refs[:7])
    for p, r in zip(preds[7:12], refs[7:12]):
        m.add(prediction=p, reference=r)
    m.add_batch(predictions=preds[12:], references=refs[12:])
    got = m.compute()
    assert got == pytest.approx(one_shot, abs=1e-9)
    assert len(m.last_scores.per_item) == len(preds)


def test_single_string_references_equal_one_element_lists():
    preds = ["a red circle moves left", "a square falls", "a green triangle rises slowly"]
    refs = ["a red circle moves to the left", "a blue square falls down", "a green triangle rises"]
    as_str = SummaryMetric().compute(predictions=preds, references=refs, meteor=False)
    as_list = SummaryMetric().compute(predictions=preds, references=[[r] for r in refs], meteor=False)
    assert as_str == pytest.approx(as_list, abs=1e-12)


def test_evaluate_load_from_local_path_offline(one_shot, pairs, monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = evaluate.load(str(EVALUATE_SCRIPT_DIR))
    assert isinstance(m, SummaryMetric)
    assert m.compute(predictions=pairs[0], references=pairs[1], meteor=False) == pytest.approx(one_shot, abs=1e-9)


def test_registered_through_the_metrics_hook():
    from ivl3_plugin.plugins import build

    plugins = build(entry_points=False)
    entry = plugins.metrics.entry("ivl3_summary")
    assert entry.obj is SummaryMetric and entry.plugin == "ivl3_plugin.default_plugins.metrics"


def test_perfect_and_empty_predictions():
    refs = ["a red circle moves from left to right", "a blue square falls", "two green triangles rise"]
    perfect = SummaryMetric().compute(predictions=refs, references=refs, meteor=False)
    for k in ("bleu4", "rouge1", "rougeL", "rougeLsum"):
        assert perfect[k] == pytest.approx(100.0)
    assert perfect["cider"] > 500  # each item's n-grams are rare in this corpus: high idf, cosine 1
    empty = SummaryMetric().compute(predictions=["", "", ""], references=refs, meteor=False)
    assert all(v == 0.0 for v in empty.values())


def test_chinese_is_scored_by_characters():
    preds, refs = ["一个红色的圆从左向右移动"], [["红色圆形从左边移动到右边", "一个红圆向右移动"]]
    default_rouge = SummaryMetric().compute(predictions=preds, references=refs, meteor=False)
    zh = SummaryMetric().compute(predictions=preds, references=refs, language="zh", meteor=False)
    assert default_rouge["rougeL"] == 0.0  # rouge-score's own tokeniser drops every non-ASCII character
    assert 30.0 < zh["rougeL"] < 100.0 and zh["bleu1"] > 0.0


def test_bad_options_fail_early_with_the_name():
    with pytest.raises(ValueError, match="tokenize='nope'"):
        SummaryMetric(tokenize="nope")
    with pytest.raises(TypeError, match="unknown option"):
        SummaryMetric().compute(predictions=["a"], references=["a"], rouge_type="x")


def test_meteor_required_but_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no java
    with pytest.raises(RuntimeError, match="METEOR requested but unavailable: no `java`"):
        SummaryMetric().compute(predictions=["a b"], references=["a b"], meteor=True)
    m = SummaryMetric()
    assert "meteor" not in m.compute(predictions=["a b"], references=["a b"])  # auto: skipped
    assert any("METEOR skipped" in n for n in m.last_scores.notes)


@pytest.mark.skipif(shutil.which("java") is None, reason="no java: the PTB tokenizer oracle is Java")
def test_coco_tokenizer_matches_coco_caption_ptb_tokenizer():
    pytest.importorskip("pycocoevalcap", reason="pycocoevalcap (test-only oracle) is not installed")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from ivl3_plugin.metric.tokenize import coco_tokenize

    preds, refs = summary_pairs()
    texts = preds + [r for rs in refs for r in rs] + [
        "It's 3.5 km (about 2 miles) -- isn't it?", "The cat's toy: a \"ball\", red & blue; left-to-right...",
        "They'll say I'm fine, we've won [twice] {really}!", "Dr. Smith's U.S. trip cost $1,000."]
    oracle = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    mismatches = [(t, oracle[i][0]) for i, t in enumerate(texts) if " ".join(coco_tokenize(t)) != oracle[i][0]]
    assert not mismatches


def test_bertscore_from_a_local_model(tmp_path):
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = "[PAD] [UNK] [CLS] [SEP] a red blue circle square moves falls left right".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]")
    fast.save_pretrained(tmp_path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)
    from ivl3_plugin.metric.bertscore import bertscore

    same, diff, multi = bertscore(["a red circle moves left", "a red circle", "a blue square falls"],
                                  [["a red circle moves left"], ["a blue square falls"],
                                   ["a red circle", "a blue square falls"]], str(tmp_path))
    assert same["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    assert diff["bertscore_f1"] < 0.999
    assert multi["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)  # the best reference wins
    # greedy matching is symmetric: P(x, y) = R(y, x)
    (xy,), (yx,) = (bertscore(["a red circle"], [["a blue square falls"]], str(tmp_path)),
                    bertscore(["a blue square falls"], [["a red circle"]], str(tmp_path)))
    assert xy["bertscore_precision"] == pytest.approx(yx["bertscore_recall"], abs=1e-6)
    via_metric = SummaryMetric().compute(predictions=["a red circle"], references=["a blue square falls"],
                                         meteor=False, bertscore_model=str(tmp_path))
    assert via_metric["bertscore_f1"] == pytest.approx(100 * diff["bertscore_f1"], abs=1e-4)
