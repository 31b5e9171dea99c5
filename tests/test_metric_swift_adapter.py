"""The ms-swift EvalMetrics adapter without a training run: unpacking, options, picklability, errors."""
from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

pytest.importorskip("swift", reason="ms-swift is not installed")


def _packed(strings):
    from swift.utils import Serializer
    from torch.nn.utils.rnn import pad_sequence

    return pad_sequence([Serializer.to_tensor(s) for s in strings], batch_first=True, padding_value=0).numpy()


@pytest.fixture
def cls():
    from ivl3_plugin.hosts.swift.metric import swift_metric_class
    from ivl3_plugin.metric.summary_metric import SummaryMetric

    return swift_metric_class("ivl3_summary", SummaryMetric)


def test_class_is_module_level_and_pickles(cls):
    from ivl3_plugin.hosts.swift import metric as swift_metric
    from ivl3_plugin.metric.summary_metric import SummaryMetric

    assert getattr(swift_metric, cls.__name__) is cls
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert swift_metric.swift_metric_class("ivl3_summary", SummaryMetric) is cls  # created once
    args = SimpleNamespace(predict_with_generate=True, metric_for_best_model="cider")
    inst = pickle.loads(pickle.dumps(cls(args, None)))
    assert inst.metric_name == "ivl3_summary"


def test_compute_metrics_scores_the_packed_strings(cls, monkeypatch):
    from transformers import EvalPrediction

    from ivl3_plugin.metric.scoring import score

    monkeypatch.setenv("IVL3_METRIC_OPTIONS", '{"meteor": false, "tokenize": "13a"}')
    preds = ["A red circle moves right.", "", "A blue square falls down from the top."]
    refs = ["A red circle moves from left to right.", "A square.", "A blue square falls from the top."]
    args = SimpleNamespace(predict_with_generate=True, metric_for_best_model="rouge-l")
    got = cls(args, None).compute_metrics(EvalPrediction(_packed(preds), _packed(refs)))
    assert got == pytest.approx(score(preds, refs, meteor=False, tokenize="13a").corpus, abs=1e-9)
    assert all(type(v) is float for v in got.values())
    assert args.metric_for_best_model == "rougeL"  # swift's default pointed at our key


def test_without_predict_with_generate_fails_at_construction(cls):
    with pytest.raises(ValueError, match="--predict_with_generate true"):
        cls(SimpleNamespace(predict_with_generate=False, metric_for_best_model="loss"), None)


def test_bad_options_env_is_named(cls, monkeypatch):
    monkeypatch.setenv("IVL3_METRIC_OPTIONS", "{meteor: no}")
    with pytest.raises(ValueError, match="IVL3_METRIC_OPTIONS is not valid JSON"):
        cls(SimpleNamespace(predict_with_generate=True, metric_for_best_model=None), None)


def test_installed_into_swift_map():
    from swift.metrics import eval_metrics_map

    from ivl3_plugin.hosts.swift.install import install

    install()
    assert eval_metrics_map["ivl3_summary"].metric_name == "ivl3_summary"
