"""Shared fixtures: the tiny model, the bundled videos, and a runner for the real ms-swift CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest




@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny InternVL3, built once per session (or reused from $IVL3_TEST_CACHE)."""
    from ivl3_plugin.tiny import build_tiny_model
    from ivl3_plugin.tiny.model import demo_text

    cache = os.environ.get("IVL3_TEST_CACHE")
    out = Path(cache) / "tiny-internvl3" if cache else tmp_path_factory.mktemp("model") / "tiny-internvl3"
    return build_tiny_model(out, extra_text=demo_text())


@pytest.fixture(scope="session")
def demo_annotations() -> Path:
    from ivl3_plugin.demo_data import ANNOTATIONS

    return ANNOTATIONS


@pytest.fixture(scope="session")
def demo_videos(demo_annotations) -> list:
    """(id, absolute mp4 path, summary) for every bundled video."""
    rows = [json.loads(l) for l in demo_annotations.read_text().splitlines() if l.strip()]
    return [(r["id"], demo_annotations.parent / r["video"], r["summary"]) for r in rows]
