"""Frames stored at tile size (``ivl3 convert --frame-size``) as the template reads them."""
from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from ivl3_plugin.template.frames import FrameSet
from ivl3_plugin.template import media as media_module
from ivl3_plugin.template.media import SampleMedia, Slot
from ivl3_plugin.template.spec import TemplateSpec


def _frames(tmp_path, size, n=2):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = tmp_path / f"f{i}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_tile_sized_frames_with_several_tiles_per_frame_warn_once(tmp_path, caplog):
    media_module._warned_tile_sized.clear()  # once per process: start from a clean slate
    spec = TemplateSpec(name="t", tile_size=32, max_tiles_per_frame=4)
    media = SampleMedia([], [FrameSet(_frames(tmp_path, (32, 32)), None)], spec, "s1")
    with caplog.at_level(logging.WARNING, logger="ivl3_plugin.template"):
        first = media.tiles(Slot(0, 0, 0))
        media.tiles(Slot(1, 0, 1))
    assert first.shape == (1, 3, 32, 32)  # a square tile-sized frame stays one tile
    warnings = [r for r in caplog.records if "--frame-size" in r.getMessage()]
    assert len(warnings) == 1 and "up to 4 tiles per frame" in warnings[0].getMessage()


def test_wide_frames_with_several_tiles_do_not_warn(tmp_path, caplog):
    spec = TemplateSpec(name="t", tile_size=32, max_tiles_per_frame=2)
    media = SampleMedia([], [FrameSet(_frames(tmp_path, (64, 32)), None)], spec, "s2")
    with caplog.at_level(logging.WARNING, logger="ivl3_plugin.template"):
        tiles = media.tiles(Slot(0, 0, 0))
    assert tiles.shape == (3, 3, 32, 32)  # 2 x 1 grid + thumbnail
    assert not [r for r in caplog.records if "--frame-size" in r.getMessage()]
