"""Plugins found through the ``ivl3_plugin`` entry-point group of a really pip-installed package.

A throwaway distribution is written to a temporary folder, built and installed
with ``pip install --no-deps --no-build-isolation --target DIR`` and put on
``PYTHONPATH`` for the ``ivl3`` subprocess: a real install that importlib.metadata
discovers, without touching the shared virtualenv (removing DIR uninstalls it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PY = sys.executable


def pip_install_target(project: Path, target: Path) -> None:
    """Build and install ``project`` into ``target`` (``--target`` keeps the venv untouched)."""
    proc = subprocess.run(
        [PY, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(project)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def ivl3(args, pythonpath: Path, timeout=600, **env):
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join([str(pythonpath), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full.pop("IVL3_BLOCK_PLUGINS", None)
    full.update(env)
    return subprocess.run([PY, "-m", "ivl3_plugin", *args], capture_output=True, text=True, env=full,
                          timeout=timeout)


THROWAWAY = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "ivl3-throwaway-plugin"
        version = "0.3.1"

        [project.entry-points.ivl3_plugin]
        throwaway-good = "ivl3_throwaway.good"
        throwaway-broken = "ivl3_throwaway.broken"
        throwaway-hook-fails = "ivl3_throwaway.hook_fails"

        [tool.setuptools]
        packages = ["ivl3_throwaway"]
    """,
    "ivl3_throwaway/__init__.py": "",
    "ivl3_throwaway/good.py": """
        from pathlib import Path
        from ivl3_plugin import hookimpl
        from ivl3_plugin.template.spec import TemplateSpec

        @hookimpl
        def register_templates(register):
            register("throwaway_tpl", TemplateSpec(name="throwaway_tpl", prompt="bullets"))

        @hookimpl
        def register_recipes(register):
            register("throwaway-recipes", Path(__file__).parent)
    """,
    "ivl3_throwaway/broken.py": """
        import a_module_that_does_not_exist_ivl3
    """,
    "ivl3_throwaway/hook_fails.py": """
        from ivl3_plugin import hookimpl

        @hookimpl
        def register_metrics(register):
            raise RuntimeError("metric backend unavailable")
    """,
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("throwaway")
    project, target = root / "src", root / "site"
    for rel, text in THROWAWAY.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    pip_install_target(project, target)
    assert list(target.glob("ivl3_throwaway_plugin-0.3.1.dist-info"))
    return target


def test_entry_point_plugins_are_listed_with_version_hooks_and_failures(installed):
    proc = ivl3(["plugins", "--json"], installed)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    rows = {r["name"]: r for r in out["plugins"]}
    good = rows["throwaway-good"]
    assert good["version"] == "0.3.1" and good["builtin"] is False
    assert good["hooks"] == ["register_recipes", "register_templates"]
    assert good["registered"] == ["recipe folder:throwaway-recipes", "template:throwaway_tpl"]
    # a plugin raising at import: reported by name, skipped, the rest keep working
    assert "throwaway-broken" not in rows
    assert any("'throwaway-broken' failed while importing" in e and "a_module_that_does_not_exist_ivl3" in e
               for e in out["errors"])
    # a plugin raising in its hook: reported with the hook's name
    assert any("'throwaway-hook-fails' failed in hook register_metrics" in e and "unavailable" in e
               for e in out["errors"])
    # built-ins are all still there
    assert "ivl3_plugin.default_plugins.templates" in rows and "ivl3_plugin.default_plugins.recipes" in rows


def test_entry_point_plugins_can_be_blocked(installed):
    proc = ivl3(["plugins"], installed, IVL3_BLOCK_PLUGINS="throwaway-broken,throwaway-hook-fails,throwaway-good")
    assert proc.returncode == 0, proc.stderr
    assert "error:" not in proc.stdout
    assert "throwaway-good 0.3.1" not in proc.stdout
    for name in ("throwaway-broken", "throwaway-hook-fails", "throwaway-good"):
        assert f"blocked: {name}" in proc.stdout
    assert "ivl3_plugin.default_plugins.templates" in proc.stdout
