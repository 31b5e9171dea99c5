"""Lazy ``module:attr`` registrations: cheap to load, validated and imported on first use."""
from __future__ import annotations

import sys

import pytest

from ivl3_plugin import hookimpl
from ivl3_plugin.plugins import build
from ivl3_plugin.plugins.registry import LazyRef, RegistrationError


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    (tmp_path / "ivl3_lazy_probe.py").write_text(
        "import datasets, evaluate\n"
        "class ProbeMetric(evaluate.Metric):\n"
        "    def _info(self):\n"
        "        f = datasets.Features({'predictions': datasets.Value('string'), 'references': datasets.Value('string')})\n"
        "        return evaluate.MetricInfo(description='', citation='', features=f)\n"
        "    def _compute(self, predictions, references):\n"
        "        return {'n': float(len(predictions))}\n"
        "NOT_A_METRIC = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("ivl3_lazy_probe", None)
    yield "ivl3_lazy_probe"
    sys.modules.pop("ivl3_lazy_probe", None)


class LazyPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("probe", LazyRef("ivl3_lazy_probe:ProbeMetric"))
        register("wrong", LazyRef("ivl3_lazy_probe:NOT_A_METRIC"))
        register("missing", LazyRef("ivl3_lazy_probe_absent:Nothing"))


def test_lazy_reference_is_imported_only_on_first_get(lazy_module):
    plugins = build({"lazy": LazyPlugin()}, entry_points=False)
    assert {"probe", "wrong", "missing"} <= set(plugins.metrics.names())
    assert lazy_module not in sys.modules  # listing plugins imported nothing
    cls = plugins.metrics.get("probe")
    assert lazy_module in sys.modules and cls.__name__ == "ProbeMetric"
    assert cls().compute(predictions=["a", "b"], references=["a", "c"]) == {"n": 2.0}
    assert plugins.metrics.get("probe") is cls  # resolved once


def test_lazy_reference_is_validated_when_resolved(lazy_module):
    plugins = build({"lazy": LazyPlugin()}, entry_points=False)
    with pytest.raises(RegistrationError, match="plugin 'lazy', metric 'wrong'"):
        plugins.metrics.get("wrong")
    with pytest.raises(RegistrationError, match="metric 'missing' of plugin 'lazy'.*ivl3_lazy_probe_absent"):
        plugins.metrics.get("missing")


def test_lazy_reference_needs_module_and_attribute():
    with pytest.raises(RegistrationError, match="package.module:attr"):
        LazyRef("no_colon_here")


def test_builtin_metric_is_lazy_and_loads():
    import subprocess

    code = ("import sys; from ivl3_plugin.plugins import get_plugins; p = get_plugins(); "
            "assert 'ivl3_summary' in p.metrics.names(); assert 'evaluate' not in sys.modules, 'eager'; "
            "cls = p.metrics.get('ivl3_summary'); print(cls.__name__, 'evaluate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["SummaryMetric", "True"]
