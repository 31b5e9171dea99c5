"""Shipped recipes and prompt files travel inside the wheel and are found with importlib.resources.

The wheel is really built (hatchling, no network) and installed with ``pip install --target``, the
layout of ``pip install --user`` or a vendored copy: no ``sys.prefix/share`` guess can find files
there, only package data can.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_carries_recipes_and_prompts_as_package_data(tmp_path):
    dist = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(dist), str(REPO)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel = next(dist.glob("ivl3_plugin-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ivl3_plugin/_resources/recipes/internvl3-8b-lora.yaml" in names
    assert "ivl3_plugin/_resources/templates/concise.j2" in names
    assert "ivl3_plugin_swift.pth" in names

    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code = ("import json, ivl3_plugin; from ivl3_plugin.resources import recipes_dir, templates_dir; "
            "from ivl3_plugin.shared.prompts import render_instruction; "
            "print(json.dumps([ivl3_plugin.__file__, str(recipes_dir()), str(templates_dir()), "
            "sorted(p.name for p in recipes_dir().glob('*.yaml')), render_instruction('concise')]))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package, recipes, templates, files, prompt = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(package).parent == target / "ivl3_plugin"  # the installed copy, not the checkout
    assert Path(recipes) == target / "ivl3_plugin" / "_resources" / "recipes"
    assert Path(templates) == target / "ivl3_plugin" / "_resources" / "templates"
    assert files == sorted(p.name for p in (REPO / "recipes").glob("*.yaml"))
    assert prompt == "Please provide a concise summary of this video in one sentence."  # rendered from the wheel
