"""Meta-tests (datasette style): the hooks, the docs and the tests stay in step.

* every hookspec is documented in docs/writing-plugins.md with its signature,
  and the docs name no hook that does not exist;
* every hook's documented example is a working plugin: it is run through the
  real loader and must register something through that hook, without errors;
* every hook has a test whose name mentions it;
* every host adapter module is described in docs/hosts.md.
"""
from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from ivl3_plugin.plugins import hookspecs
from ivl3_plugin.plugins import HOOKS, build

REPO = Path(__file__).resolve().parent.parent
WRITING = (REPO / "docs" / "writing-plugins.md").read_text()
HOSTS_DOC = (REPO / "docs" / "hosts.md").read_text()
PLUGINS_DOC = (REPO / "docs" / "plugins.md").read_text()
HOOK_NAMES = sorted(n for n, f in vars(hookspecs).items()
                    if n.startswith("register_") and inspect.isfunction(f) and hasattr(f, "ivl3_plugin_spec"))


def _section(hook: str) -> str:
    m = re.search(rf"^### `{hook}\(register\)`\n(.*?)(?=^#{{2,3}} |\Z)", WRITING, re.S | re.M)
    assert m, f"docs/writing-plugins.md has no section '### `{hook}(register)`'"
    return m.group(1)


def test_hookspecs_are_the_hooks_the_loader_fills():
    assert HOOK_NAMES and HOOK_NAMES == sorted(HOOKS)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hookspec_is_documented_with_signature_and_register_contract(hook):
    spec = getattr(hookspecs, hook)
    assert list(inspect.signature(spec).parameters) == ["register"]
    assert (spec.__doc__ or "").strip(), f"hookspec {hook} has no docstring"
    section = _section(hook)
    assert "register(" in section, f"{hook}: the docs must say what register(name, obj) takes"


def test_docs_name_no_hook_that_does_not_exist():
    documented = set(re.findall(r"^### `(register_\w+)\(register\)`", WRITING, re.M))
    assert documented == set(HOOK_NAMES)
    mentioned = set(re.findall(r"\b(register_[a-z_]+)\(register\)", WRITING + PLUGINS_DOC))
    assert mentioned <= set(HOOK_NAMES), mentioned - set(HOOK_NAMES)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_documented_hook_example_is_a_working_plugin(hook, tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", _section(hook), re.S)
    examples = [b for b in blocks if "@hookimpl" in b]
    assert examples, f"docs/writing-plugins.md: {hook} has no runnable ```python example"
    for n, code in enumerate(examples):
        module = types.ModuleType(f"ivl3_doc_example_{hook}_{n}")
        module.__file__ = str(tmp_path / "plugin.py")
        exec(compile(code, f"docs/writing-plugins.md[{hook}]", "exec"), module.__dict__)
        name = f"doc-{hook}-{n}"
        loaded = build({name: module}, entry_points=False)
        assert [str(e) for e in loaded.errors] == []
        mine = [e for e in loaded.registry(hook) if e.plugin == name]
        assert mine, f"the {hook} example registered nothing"


def _test_names() -> str:
    names = []
    for path in list((REPO / "tests").glob("test_*.py")) + list((REPO / "examples").glob("*/tests/test_*.py")):
        if path.name.startswith("test_meta_"):
            continue
        names += re.findall(r"^def (test_\w+)", path.read_text(), re.M)
    return "\n".join(names)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_test_named_after_it(hook):
    assert re.search(rf"^test_\w*{hook}\w*$", _test_names(), re.M), f"no test function mentions {hook}"


def test_every_host_adapter_module_is_described_in_docs_hosts():
    hosts = REPO / "ivl3_plugin" / "hosts"
    modules = sorted(str(p.relative_to(hosts)) for p in hosts.rglob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if m not in HOSTS_DOC]
    assert not missing, f"docs/hosts.md does not describe {missing}"
    assert "ivl3_plugin_swift.pth" in HOSTS_DOC and "swift/external_plugin.py" in HOSTS_DOC


def test_every_host_in_the_table_implements_the_protocol():
    from ivl3_plugin.hosts import HOSTS, get_host
    from ivl3_plugin.hosts.protocol import Host

    members = [m for m in vars(Host) if not m.startswith("_")] + ["name", "description"]
    for name in HOSTS:
        host = get_host(name)
        assert host.name == name
        missing = [m for m in members if not hasattr(host, m)]
        assert not missing, f"host {name} lacks {missing}"


def test_plugin_docs_cover_the_cli_and_the_block_variable():
    from ivl3_plugin.plugins import BLOCK_ENV, ENTRY_POINT_GROUP

    assert "ivl3 plugins --json" in PLUGINS_DOC and BLOCK_ENV in PLUGINS_DOC
    assert f"[project.entry-points.{ENTRY_POINT_GROUP}]" in WRITING
    example = (REPO / "examples" / "ivl3-dataset-example" / "pyproject.toml").read_text()
    assert f"[project.entry-points.{ENTRY_POINT_GROUP}]" in example
