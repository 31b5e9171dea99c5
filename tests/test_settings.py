"""One settings surface: every environment variable declared once, read only through ``ivl3_plugin.settings``."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivl3_plugin import settings
from ivl3_plugin.settings import SETTINGS, SettingError, parse_bool

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ivl3_plugin"


def _env_reads(tree: ast.AST):
    """Names read from the environment: os.environ.get("X"), os.environ["X"], os.getenv("X")."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = ast.unparse(node.func)
            if f in ("os.environ.get", "os.getenv", "environ.get"):
                yield node.args[0].value, node.lineno
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
            if isinstance(node.slice, ast.Constant):
                yield node.slice.value, node.lineno


def test_no_module_but_settings_reads_an_environment_variable():
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py" and path.parent == PACKAGE:
            continue
        found += [f"{path.relative_to(REPO)}:{line} reads {name}" for name, line in _env_reads(ast.parse(path.read_text()))]
    assert not found, found


def test_ivl3_names_appear_only_in_settings_and_docs_strings():
    """`grep IVL3_ ivl3_plugin`: the settings module declares them; elsewhere only as `settings.X.name`."""
    offenders = []
    for path in list(PACKAGE.rglob("*.py")) + list(PACKAGE.rglob("*.pth")):
        if path == PACKAGE / "settings.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "IVL3_" in line and not line.lstrip().startswith(("#", "help=", "p.add_argument", "r.add_argument")) \
                    and "$IVL3_" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_docs_table_is_generated_from_the_declarations():
    doc = (REPO / "docs" / "settings.md").read_text()
    assert settings.markdown_table() in doc
    for name in SETTINGS:
        assert f"`{name}`" in doc


@pytest.mark.parametrize("raw,value", [("1", True), ("TRUE", True), ("yes", True), (" on ", True),
                                       ("0", False), ("False", False), ("no", False), ("off", False)])
def test_one_yes_no_grammar(raw, value):
    assert parse_bool(raw, "X") is value


def test_bad_values_are_errors_that_name_the_variable(monkeypatch):
    monkeypatch.setenv("IVL3_COMPILE", "maybe")
    with pytest.raises(SettingError, match="IVL3_COMPILE='maybe'"):
        settings.COMPILE.get()
    monkeypatch.setenv("IVL3_TEMPLATE_ARGS", "[1]")
    with pytest.raises(SettingError, match="IVL3_TEMPLATE_ARGS must be a JSON object"):
        settings.TEMPLATE_ARGS.get()
    monkeypatch.setenv("IVL3_TILE_BACKEND", "cuda")
    with pytest.raises(SettingError, match="IVL3_TILE_BACKEND='cuda'"):
        settings.TILE_BACKEND.get()


def test_unset_or_empty_means_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("IVL3_HOME", raising=False)
    assert settings.home() == Path.home() / ".cache" / "ivl3"
    monkeypatch.setenv("IVL3_HOME", str(tmp_path))
    assert settings.home() == tmp_path
    monkeypatch.setenv("IVL3_COMPILE", "")
    assert settings.COMPILE.get() is True


def test_every_ivl3_home_user_follows_the_one_setting(monkeypatch, tmp_path):
    from ivl3_plugin.convert.cache import default_cache_dir
    from ivl3_plugin.default_plugins.datasets import demo_dataset_dir
    from ivl3_plugin.tiny import default_tiny_model_dir

    monkeypatch.setenv("IVL3_HOME", str(tmp_path))
    for p in (default_cache_dir(), demo_dataset_dir(), default_tiny_model_dir()):
        assert tmp_path in p.parents


def _hook_installed(value):
    env = {**os.environ}
    env.pop("IVL3_NO_SWIFT_IMPORT_HOOK", None)
    if value is not None:
        env["IVL3_NO_SWIFT_IMPORT_HOOK"] = value
    code = ("import sys, ivl3_plugin.hosts.swift.import_hook as h; "
            "print(any(type(f).__name__ == '_Finder' for f in sys.meta_path))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "True", proc.stderr


def test_the_swift_start_up_hook_reads_the_setting_with_the_one_grammar():
    assert _hook_installed(None)[0] is True
    assert _hook_installed("0")[0] is True  # "0" means no: the hook stays (the old .pth read it as "disable")
    assert _hook_installed("1")[0] is False
    on, err = _hook_installed("perhaps")
    assert on is False and "IVL3_NO_SWIFT_IMPORT_HOOK='perhaps'" in err  # never breaks start-up, says why


def test_ivl3_settings_command_shows_values_and_flags_invalid_ones(tmp_path):
    env = {**os.environ, "IVL3_HOME": str(tmp_path), "IVL3_COMPILE": "maybe"}
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "settings"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1
    assert str(tmp_path) in proc.stdout and "INVALID: IVL3_COMPILE='maybe'" in proc.stdout
