"""The plugin core in-process: duplicates, broken plugins, blocking, and what `ivl3 plugins` prints.

Each test builds a fresh plugin set with :func:`ivl3_plugin.plugins.build`, so
nothing here depends on (or changes) the process-wide plugins.
"""
from __future__ import annotations

import json
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from ivl3_plugin import hookimpl
from ivl3_plugin.plugins import loader as plugins_mod
from ivl3_plugin.plugins import HOOKS, build
from ivl3_plugin.plugins.registry import RegistrationError, Registry
from ivl3_plugin.template.spec import TemplateSpec

BUILTIN_TEMPLATES = "ivl3_plugin.default_plugins.templates"


@pytest.fixture(autouse=True)
def _no_block(monkeypatch):
    monkeypatch.delenv(plugins_mod.BLOCK_ENV, raising=False)


class TwoTemplates:
    @hookimpl
    def register_templates(register):
        register("alpha", TemplateSpec(name="alpha"))
        register("beta", TemplateSpec(name="beta", prompt="detailed"))


class ShadowsBuiltin:
    """Tries to take the built-in template's name, then adds one of its own."""

    @hookimpl
    def register_templates(register):
        register("ivl3_video", TemplateSpec(name="ivl3_video", prompt="bullets"))
        register("shadow_own", TemplateSpec(name="shadow_own"))


class RaisesInHook:
    @hookimpl
    def register_templates(register):
        register("half_done", TemplateSpec(name="half_done"))
        raise RuntimeError("boom in register_templates")


class WrongType:
    @hookimpl
    def register_templates(register):
        register("not_a_spec", {"name": "not_a_spec"})


def test_register_templates_from_a_plugin_lands_in_the_registry_with_its_owner():
    p = build({"two": TwoTemplates}, entry_points=False)
    assert p.errors == []
    assert {"alpha", "beta", "ivl3_video"} <= set(p.templates.names())
    assert p.templates.entry("beta").plugin == "two"
    assert p.templates.get("beta").prompt == "detailed"
    assert p.templates.entry("ivl3_video").plugin == BUILTIN_TEMPLATES


def test_duplicate_name_between_two_plugins_names_both_and_first_keeps_it():
    class Other:
        @hookimpl
        def register_templates(register):
            register("alpha", TemplateSpec(name="alpha", prompt="bullets"))

    p = build({"first": TwoTemplates, "second": Other}, entry_points=False)
    assert len(p.errors) == 1
    err = str(p.errors[0])
    assert "'first'" in err and "'second'" in err and "'alpha'" in err
    assert p.errors[0].plugin == "second" and p.errors[0].phase == "register_templates"
    assert p.templates.entry("alpha").plugin == "first"
    assert p.templates.get("alpha").prompt == "concise"


def test_third_party_cannot_shadow_a_builtin_and_is_skipped_whole():
    p = build({"shadow": ShadowsBuiltin}, entry_points=False)
    assert [e.plugin for e in p.errors] == ["shadow"]
    assert BUILTIN_TEMPLATES in str(p.errors[0])
    assert p.templates.entry("ivl3_video").plugin == BUILTIN_TEMPLATES
    assert p.templates.get("ivl3_video").prompt == "concise"
    # the failing hook is skipped as a whole: nothing half-registered stays behind
    assert "shadow_own" not in p.templates


def test_plugin_raising_in_a_hook_is_reported_by_name_and_the_rest_keep_working():
    p = build({"broken": RaisesInHook, "two": TwoTemplates}, entry_points=False)
    assert len(p.errors) == 1
    assert p.errors[0].plugin == "broken"
    assert "register_templates" in str(p.errors[0]) and "boom" in str(p.errors[0])
    assert "half_done" not in p.templates
    assert {"alpha", "beta", "ivl3_video"} <= set(p.templates.names())
    # built-ins of other kinds are untouched
    assert "ivl3" in p.recipes and "ivl3-demo" in p.datasets


def test_wrong_object_type_is_refused_with_plugin_and_name():
    p = build({"wrong": WrongType}, entry_points=False)
    assert len(p.errors) == 1
    msg = str(p.errors[0])
    assert "'wrong'" in msg and "not_a_spec" in msg and "TemplateSpec" in msg
    assert "not_a_spec" not in p.templates


@pytest.mark.parametrize("bad", ["", "has space", "-lead", "a/b", None])
def test_invalid_names_are_refused(bad):
    reg = Registry("template")
    with pytest.raises(RegistrationError, match="invalid name"):
        reg.add(bad, TemplateSpec(name="x"), plugin="p")


def test_same_object_from_the_same_plugin_twice_is_harmless():
    reg = Registry("template")
    spec = TemplateSpec(name="x")
    reg.add("x", spec, plugin="p")
    reg.add("x", spec, plugin="p")
    assert len(reg) == 1
    with pytest.raises(KeyError, match="known: x"):
        reg.get("y")


def test_blocked_plugin_is_not_loaded(monkeypatch):
    monkeypatch.setenv(plugins_mod.BLOCK_ENV, "two, broken")
    p = build({"two": TwoTemplates, "broken": RaisesInHook}, entry_points=False)
    assert p.errors == []
    assert "alpha" not in p.templates and "half_done" not in p.templates
    assert set(p.blocked) == {"two", "broken"}
    assert "two" not in [i.name for i in p.info()]


def test_block_star_keeps_builtins_but_blocks_third_party(monkeypatch):
    monkeypatch.setenv(plugins_mod.BLOCK_ENV, "*")
    p = build({"two": TwoTemplates}, entry_points=False)
    assert "alpha" not in p.templates
    assert "ivl3_video" in p.templates


def test_a_builtin_can_be_blocked_by_name(monkeypatch):
    monkeypatch.setenv(plugins_mod.BLOCK_ENV, BUILTIN_TEMPLATES)
    p = build({"two": TwoTemplates}, entry_points=False)
    assert "ivl3_video" not in p.templates and "alpha" in p.templates


def _fake_entry_points(monkeypatch, tmp_path, modules: dict, eps: list):
    """Real modules on disk behind real EntryPoint objects (only the lookup is replaced)."""
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in modules:
        sys.modules.pop(name, None)
    entries = [metadata.EntryPoint(name=n, value=v, group=plugins_mod.ENTRY_POINT_GROUP) for n, v in eps]

    def entry_points(**kw):
        assert kw == {"group": plugins_mod.ENTRY_POINT_GROUP}
        return entries

    monkeypatch.setattr(plugins_mod.metadata, "entry_points", entry_points)


def test_plugin_raising_at_import_is_reported_by_name_and_skipped(monkeypatch, tmp_path):
    _fake_entry_points(
        monkeypatch, tmp_path,
        {
            "ivl3_test_bad_import": "raise ImportError('needs a package that is not installed')\n",
            "ivl3_test_good": """
                from ivl3_plugin import hookimpl
                from ivl3_plugin.template.spec import TemplateSpec

                @hookimpl
                def register_templates(register):
                    register("good_tpl", TemplateSpec(name="good_tpl"))
            """,
        },
        [("bad-import", "ivl3_test_bad_import"), ("good", "ivl3_test_good")],
    )
    p = build()
    assert [(e.plugin, e.phase) for e in p.errors] == [("bad-import", "import")]
    assert "while importing" in str(p.errors[0]) and "not installed" in str(p.errors[0])
    assert p.templates.entry("good_tpl").plugin == "good"
    assert "bad-import" not in [i.name for i in p.info()]


def test_unknown_hook_name_in_a_plugin_is_an_error_naming_it():
    class Typo:
        @hookimpl
        def register_template(register):  # missing "s"
            pass

    with pytest.raises(Exception, match="register_template"):
        build({"typo": Typo}, entry_points=False)


def test_every_hook_has_a_registry():
    from ivl3_plugin.plugins import hookspecs

    specs = {n for n in dir(hookspecs) if n.startswith("register_") and callable(getattr(hookspecs, n))}
    assert specs == set(HOOKS)
    p = build(entry_points=False)
    assert set(p.registries) == specs


def _cli_json(capsys, monkeypatch, extra):
    from ivl3_plugin import cli

    monkeypatch.setattr(plugins_mod, "_LOADED", build(extra, entry_points=False))
    assert cli.main(["plugins", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ivl3_plugins_json_lists_name_version_hooks_registered_and_errors(capsys, monkeypatch):
    out = _cli_json(capsys, monkeypatch, {"two": TwoTemplates, "broken": RaisesInHook})
    rows = {r["name"]: r for r in out["plugins"]}
    assert rows["two"]["hooks"] == ["register_templates"]
    assert rows["two"]["builtin"] is False
    assert sorted(rows["two"]["registered"]) == ["template:alpha", "template:beta"]
    assert rows[BUILTIN_TEMPLATES]["version"] == metadata.version("ivl3-plugin")
    assert rows[BUILTIN_TEMPLATES]["builtin"] is True
    assert any("'broken'" in e and "boom" in e for e in out["errors"])


def test_ivl3_plugins_text_output(capsys, monkeypatch):
    from ivl3_plugin import cli

    monkeypatch.setenv(plugins_mod.BLOCK_ENV, "gone")
    monkeypatch.setattr(plugins_mod, "_LOADED", build({"two": TwoTemplates, "gone": TwoTemplates}, entry_points=False))
    assert cli.main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "two  (third-party)" in text or "two (third-party)" in text
    assert "hooks: register_templates" in text
    assert "registered: template:alpha, template:beta" in text
    assert "blocked: gone" in text


# ---------------------------------------------------------------- one test per hook (checked by tests/test_meta_hooks.py)

def test_register_dataset_sources_accepts_a_source_and_refuses_a_non_source():
    from ivl3_plugin.convert.sources import DatasetSource, SourceRow

    class Lines(DatasetSource):
        def sniff(self, path):
            return str(path).endswith(".lines")

        def read(self, path, **_):
            for n, line in enumerate(Path(path).read_text().splitlines(), 1):
                video, summary = line.split("|")
                yield SourceRow(file=str(path), row=n, video=video, summary=summary)

    class Plugin:
        @hookimpl
        def register_dataset_sources(register):
            register("lines", Lines())

    class Bad:
        @hookimpl
        def register_dataset_sources(register):
            register("bad-source", object())

    p = build({"lines-plugin": Plugin, "bad": Bad}, entry_points=False)
    assert p.dataset_sources.entry("lines").plugin == "lines-plugin"
    assert "folder" in p.dataset_sources  # built-ins still there
    assert [e.plugin for e in p.errors] == ["bad"] and ".sniff()" in str(p.errors[0])


def test_register_datasets_accepts_a_dataset_spec(tmp_path):
    from ivl3_plugin.datasets import DatasetSpec

    class Plugin:
        @hookimpl
        def register_datasets(register):
            register("my-clips", DatasetSpec(path=tmp_path, description="mine"))
            register("bad-ds", str(tmp_path))

    p = build({"ds": Plugin}, entry_points=False)
    assert "DatasetSpec" in str(p.errors[0]) and "bad-ds" in str(p.errors[0])
    assert "my-clips" not in p.datasets  # the failing hook is skipped whole
    assert "ivl3-demo" in p.datasets


def test_register_preprocessors_accepts_a_callable():
    def half(image, **options):
        return image

    class Plugin:
        @hookimpl
        def register_preprocessors(register):
            register("half", half)

    p = build({"pp": Plugin}, entry_points=False)
    assert p.preprocessors.get("half") is half
    assert "internvl_dynamic" in p.preprocessors


def test_register_metrics_accepts_a_metric_class_not_an_instance():
    class Exact:
        def compute(self, predictions, references):
            return {"exact": sum(p == r for p, r in zip(predictions, references)) / len(references)}

    class Plugin:
        @hookimpl
        def register_metrics(register):
            register("exact", Exact)

    class Instance:
        @hookimpl
        def register_metrics(register):
            register("exact-instance", Exact())

    p = build({"m": Plugin, "inst": Instance}, entry_points=False)
    assert p.metrics.get("exact")().compute(predictions=["a", "b"], references=["a", "c"]) == {"exact": 0.5}
    assert [e.plugin for e in p.errors] == ["inst"]


def test_register_recipes_needs_an_existing_folder(tmp_path):
    (tmp_path / "mine.yaml").write_text("model: x\n")

    class Plugin:
        @hookimpl
        def register_recipes(register):
            register("mine", tmp_path)

    class Missing:
        @hookimpl
        def register_recipes(register):
            register("missing", tmp_path / "nope")

    p = build({"r": Plugin, "missing": Missing}, entry_points=False)
    assert Path(p.recipes.get("mine")) == tmp_path
    assert "does not exist" in str(p.errors[0]) and p.errors[0].plugin == "missing"
