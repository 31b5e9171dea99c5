"""Shipped folders (recipes, prompt templates) as package data, found with ``importlib.resources``.

The repository keeps ``recipes/`` and ``templates/`` at its top level (the product's layout); the
wheel carries them inside the package as ``ivl3_plugin/_resources/{recipes,templates}``
(``pyproject.toml`` force-includes them), so an installed copy finds them wherever the package
is — a venv, ``pip install --user``, ``--target`` — and never under a ``sys.prefix`` guess.  A
checkout (editable install) has no ``_resources`` and uses the top-level folders.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _resource(name: str) -> Path:
    packaged = Path(str(resources.files("ivl3_plugin").joinpath("_resources", name)))
    if packaged.is_dir():
        return packaged
    checkout = REPO_DIR / name
    if checkout.is_dir() and (REPO_DIR / "pyproject.toml").is_file():
        return checkout
    raise FileNotFoundError(f"ivl3-plugin's {name}/ folder is missing from {packaged} (a broken install: "
                            "reinstall ivl3-plugin)")


def recipes_dir() -> Path:
    return _resource("recipes")


def templates_dir() -> Path:
    return _resource("templates")
