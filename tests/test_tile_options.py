"""Tiler options: tile order, thumbnail, budgets, normalisations, dtypes, and the registered plugin."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ivl3_plugin.tile import (
    CLIP_MEAN,
    CLIP_STD,
    NORMS,
    PREPROCESSOR_NAME,
    concat_pixel_values,
    tile_image,
    tile_images,
    tile_count,
    tiles_per_image,
)

T = 448


def _mosaic(cols, rows, tile=T):
    """An image already at grid size whose tile k (row-major) is flat grey 10*k+5 (resize is a no-op)."""
    arr = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        arr[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = 10 * k + 5
    return arr


def test_tiles_are_row_major_and_thumbnail_is_last():
    cols, rows = 3, 2
    result = tile_image(_mosaic(cols, rows))
    assert result.grid == (3, 2) and result.thumbnail and result.n_tiles == 7
    mean, std = NORMS["imagenet"]
    for k in range(cols * rows):
        tile = result.pixel_values[k]
        for c in range(3):
            want = ((10 * k + 5) / 255 - mean[c]) / std[c]
            # away from the borders a flat region stays flat through the bicubic resize
            assert torch.allclose(tile[c, 8:-8, 8:-8], torch.tensor(want), atol=1e-5), (k, c)
    thumb = result.pixel_values[-1, 0]
    assert thumb[10, 10] < thumb[-10, -10]  # whole image shrunk: tile 0 top-left, tile 5 bottom-right


def test_thumbnail_off_and_single_tile_has_none():
    assert tile_image(_mosaic(3, 2), thumbnail=False).n_tiles == 6
    single = tile_image(np.zeros((448, 448, 3), np.uint8))
    assert single.grid == (1, 1) and single.n_tiles == 1 and not single.thumbnail


def test_min_and_max_tiles_bound_the_grid():
    square = np.zeros((500, 500, 3), np.uint8)
    assert tile_image(square, min_tiles=4, max_tiles=4).grid == (2, 2)
    wide = np.zeros((100, 1000, 3), np.uint8)
    assert tile_image(wide, max_tiles=1).grid == (1, 1)
    assert tile_image(wide, max_tiles=6).grid == (6, 1)
    with pytest.raises(ValueError, match="min_tiles"):
        tile_image(square, min_tiles=5, max_tiles=4)


def test_other_tile_size():
    # (2,1) and (4,2) tie on ratio; 130*60 > 0.5*32*32*8, so the larger grid wins
    result = tile_image(np.zeros((60, 130, 3), np.uint8), tile_size=32)
    assert result.grid == (4, 2) and tuple(result.pixel_values.shape) == (9, 3, 32, 32)
    small = tile_image(np.zeros((60, 130, 3), np.uint8), tile_size=64)  # 7800 < 0.5*64*64*8
    assert small.grid == (2, 1) and tuple(small.pixel_values.shape) == (3, 3, 64, 64)


@pytest.mark.parametrize("norm", ["clip", "siglip"])
def test_named_normalisations(norm):
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (448, 448, 3), dtype=np.uint8))
    mean, std = NORMS[norm]
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
    want = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    got = tile_image(img, norm=norm).pixel_values[0]
    assert float((got - want).abs().max()) <= 1e-5
    explicit = tile_image(img, mean=mean, std=std).pixel_values[0]
    assert torch.equal(got, explicit)
    assert NORMS["clip"] == (CLIP_MEAN, CLIP_STD)
    with pytest.raises(ValueError, match="unknown norm"):
        tile_image(img, norm="bogus")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_output_dtype(dtype):
    img = np.random.default_rng(4).integers(0, 256, (300, 700, 3), dtype=np.uint8)
    ref = tile_image(img).pixel_values
    got = tile_image(img, dtype=dtype).pixel_values
    assert got.dtype == dtype and got.shape == ref.shape
    assert torch.allclose(got.float(), ref, atol=2e-2)


def test_budgets_for_video_frames_and_multi_image_samples():
    assert [tiles_per_image(12, n) for n in (1, 2, 3, 5, 12, 13, 40)] == [12, 6, 4, 2, 1, 1, 1]
    wide = np.zeros((100, 1000, 3), np.uint8)  # wants 10 tiles on its own
    frames = tile_images([wide] * 4, video=True)
    assert [r.grid for r in frames] == [(1, 1)] * 4 and all(r.n_tiles == 1 for r in frames)
    frames2 = tile_images([wide] * 2, video=True, frame_max_tiles=2)
    assert [r.n_tiles for r in frames2] == [3, 3]  # (2,1) grid + thumbnail
    three = tile_images([wide] * 3, max_tiles=12)
    assert [r.grid for r in three] == [(4, 1)] * 3  # budget 12 // 3 = 4 each
    unshared = tile_images([wide] * 3, max_tiles=12, share_budget=False)
    assert [r.grid for r in unshared] == [(10, 1)] * 3
    pv = concat_pixel_values(three)
    assert tuple(pv.shape) == (15, 3, T, T)
    assert tile_images([]) == []


def test_registered_as_preprocessor():
    from ivl3_plugin.plugins import build

    plugins = build(entry_points=False)
    assert not plugins.errors
    entry = plugins.preprocessors.entry(PREPROCESSOR_NAME)
    assert entry.plugin == "ivl3_plugin.default_plugins.tiling"
    result = entry.obj(np.zeros((200, 900, 3), np.uint8), max_tiles=4)
    assert result.grid == (4, 1) and result.n_tiles == 5
    assert torch.equal(result.pixel_values, tile_image(np.zeros((200, 900, 3), np.uint8), max_tiles=4).pixel_values)
    import pickle

    assert pickle.loads(pickle.dumps(entry.obj)) is entry.obj  # templates are pickled into dataset workers


def test_loading_plugins_does_not_import_torch_for_the_tiler():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ivl3_plugin.default_plugins import tiling\n"
        "seen = {}\n"
        "tiling.register_preprocessors(register=lambda name, fn: seen.update({name: fn}))\n"
        "print(sorted(seen), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['internvl_dynamic'] False"


@pytest.mark.parametrize("w,h,max_tiles,thumb", [(1, 1, 12, True), (1920, 1080, 12, True), (1920, 1080, 12, False),
                                                 (700, 90, 4, True), (300, 1200, 1, True), (60, 130, 6, True)])
def test_tile_count_predicts_tile_image(w, h, max_tiles, thumb):
    result = tile_image(np.zeros((h, w, 3), np.uint8), max_tiles=max_tiles, thumbnail=thumb, tile_size=32)
    assert tile_count(w, h, max_tiles=max_tiles, thumbnail=thumb, tile_size=32) == result.n_tiles

