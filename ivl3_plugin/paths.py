"""Where shipped resources live: inside the wheel, or at the repository root in a checkout."""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _resource(name: str) -> Path:
    """A checkout's own folder first (editable installs), else the wheel's shared data."""
    checkout = REPO_DIR / name
    if checkout.is_dir() and (REPO_DIR / "pyproject.toml").is_file():
        return checkout
    return Path(sys.prefix) / "share" / "ivl3-plugin" / name


def recipes_dir() -> Path:
    return _resource("recipes")


def templates_dir() -> Path:
    return _resource("templates")
