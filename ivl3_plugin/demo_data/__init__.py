"""The bundled demo videos: real mp4 files of coloured shapes with one-sentence summaries.

``generate`` is the script that made them (``python -m ivl3_plugin.demo_data.generate``).
"""
from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
VIDEO_DIR = DEMO_DIR / "videos"
ANNOTATIONS = DEMO_DIR / "annotations.jsonl"
