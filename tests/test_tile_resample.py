"""The numba resampler equals PIL's bicubic resize bit for bit, and the fused tiler equals the PIL path.

Parity with ms-swift (1e-5 after normalisation) is far below one grey level, so every resized
uint8 pixel must be PIL's.  These tests compare against the installed Pillow itself over many
shapes (up- and downscaling, one side unchanged, 1x1, 20000x200, 1-pixel outputs) and contents
(noise, and hard 0/255 patterns whose negative bicubic lobes clip at both ends).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("numba")

from ivl3_plugin.tile import pick_grid, resample, tile_image  # noqa: E402
from ivl3_plugin.tile.tiler import _resampler, _scale_bias  # noqa: E402


def _content(w, h, kind, rng):
    """HxWx3 uint8: noise, or a hard 0/255 pattern."""
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == 1:  # 1-pixel checkerboard, inverted in the green channel
        g = ((xx + yy) % 2) * 255
        return np.stack([g, 255 - g, g], -1).astype(np.uint8)
    if kind == 2:  # coarser checkerboards of different periods per channel
        return np.stack([((xx // p + yy // p) % 2) * 255 for p in (2, 3, 5)], -1).astype(np.uint8)
    if kind == 3:  # thin lines and isolated dots on black: big overshoot either side
        a = np.zeros((h, w, 3), np.uint8)
        a[::7] = 255
        a[:, ::5, 1] = 255
        a[rng.integers(0, h, 20), rng.integers(0, w, 20)] = 255
        return a
    a = rng.integers(0, 2, (h, w, 3), dtype=np.uint8) * 255  # 0/255 noise
    return a


def _pil(a, size):
    return np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BICUBIC))


def _cases():
    rng = np.random.default_rng(1234)
    cases = []
    for i in range(100):  # small random sizes, anything goes
        cases.append(tuple(int(v) for v in rng.integers(1, 120, 4)))
    for i in range(60):  # upscaling
        w, h = (int(v) for v in rng.integers(1, 80, 2))
        cases.append((w, h, int(w * rng.uniform(1.05, 9) + 1), int(h * rng.uniform(1.05, 9) + 1)))
    for i in range(60):  # downscaling by up to ~20x
        w, h = (int(v) for v in rng.integers(40, 700, 2))
        fx, fy = rng.uniform(1.05, 20, 2)
        cases.append((w, h, max(1, int(w / fx)), max(1, int(h / fy))))
    for i in range(40):  # one side unchanged
        w, h, o = (int(v) for v in rng.integers(1, 300, 3))
        cases.append((w, h, w, o) if i % 2 else (w, h, o, h))
    for i in range(30):  # height shrinks much more than width: Pillow 13 goes vertical first
        w, h = (int(v) for v in rng.integers(10, 300, 2))
        cases.append((w, h * 4, int(w * rng.uniform(0.8, 3)) + 1, max(1, h // 3)))
    cases += [(1, 1, 1, 1), (1, 1, 448, 448), (1, 1, 3, 1), (5, 1, 1, 7), (1, 9, 4, 1), (300, 200, 1, 1),
              (7, 300, 1, 3), (300, 7, 2, 1), (100, 100, 90, 79), (100, 100, 90, 80), (97, 1301, 448, 448),
              (448, 448, 448, 448), (796, 448, 448, 448), (448, 796, 448, 448), (640, 480, 1792, 1344)]
    return cases


CASES = _cases()


def test_enough_and_varied_cases():
    assert len(CASES) >= 300
    ups = sum(ow > w and oh > h for w, h, ow, oh in CASES)
    downs = sum(ow < w and oh < h for w, h, ow, oh in CASES)
    same = sum((ow == w) != (oh == h) for w, h, ow, oh in CASES)
    vfirst = sum(resample.vertical_first(w, h, ow, oh) and ow != w for w, h, ow, oh in CASES)
    assert min(ups, downs, same) >= 30
    assert max(w / ow for w, h, ow, oh in CASES) >= 15
    if int(Image.__version__.split(".")[0]) >= 13:
        assert vfirst >= 30  # both of Pillow's pass orders are exercised


def test_resize_equals_pil_bit_for_bit():
    rng = np.random.default_rng(7)
    bad = []
    for i, (w, h, ow, oh) in enumerate(CASES):
        a = _content(w, h, i % 5, rng)
        ours, ref = resample.resize(a, (ow, oh)), _pil(a, (ow, oh))
        assert ours.shape == ref.shape == (oh, ow, 3)
        if not np.array_equal(ours, ref):
            bad.append(((w, h, ow, oh), i % 5, int(np.abs(ours.astype(int) - ref).max())))
    assert not bad, bad[:10]


@pytest.mark.parametrize("size", [(5376, 448), (448, 448), (1, 1), (20000, 1), (37, 200)])
def test_resize_wide_panorama(size):
    rng = np.random.default_rng(3)
    a = np.concatenate([_content(10000, 200, 0, rng), _content(10000, 200, 1, rng)], 1)
    assert np.array_equal(resample.resize(a, size), _pil(a, size))


def test_pass_order_matters_and_follows_pillow():
    """Where the two pass orders give different bits, ours picks Pillow's (a wrong order would fail)."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    src = resample._rgbx(a)
    one, zero = np.ones(3, np.float32), np.zeros(3, np.float32)
    for size in [(90, 79), (90, 80), (80, 40), (120, 30)]:
        ref = _pil(a, size)
        both = []
        for vfirst in (False, True):
            out = np.empty((1, 3, size[1], size[0]), np.float32)
            resample._resize_tiles(src, 1, 1, size[1], size[0], one, zero, out, np.empty((0, 3, 1, 1), np.uint16), vfirst)
            both.append(out[0].transpose(1, 2, 0).astype(np.uint8))
        assert not np.array_equal(both[0], both[1]), size
        chosen = resample.vertical_first(100, 100, *size)
        assert np.array_equal(both[chosen], ref) and not np.array_equal(both[not chosen], ref), size


def test_rgbx_input_and_validation():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    x = np.concatenate([a, rng.integers(0, 256, (31, 47, 1), dtype=np.uint8)], 2)  # 4th byte ignored
    assert np.array_equal(resample.resize(x, (20, 60)), _pil(a, (20, 60)))
    with pytest.raises(ValueError):
        resample.resize(a[..., 0], (5, 5))
    with pytest.raises(ValueError):
        resample.resize(a.astype(np.float32), (5, 5))
    with pytest.raises(ValueError):
        resample.resize(a, (0, 5))
    scale, bias = _scale_bias((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with pytest.raises(ValueError):
        resample.resize_normalise(a, (2, 1), 8, scale, bias, np.empty((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError):
        resample.resize_normalise(a, (1, 1), 8, scale, bias, np.empty((1, 3, 8, 8), np.float64))


def test_pil_rgbx_equals_asarray_and_falls_back(monkeypatch):
    rng = np.random.default_rng(2)
    for w, h in [(1, 1), (3, 5), (640, 481), (2500, 1700)]:  # the last spans several PIL memory blocks
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        assert np.array_equal(resample.pil_rgbx(img)[..., :3], np.asarray(img))
    grey = Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8))
    assert np.array_equal(resample.pil_rgbx(grey)[..., :3], np.asarray(grey.convert("RGB")))

    def broken(*args, **kwargs):
        raise ValueError("no shared buffers in this Pillow")

    monkeypatch.setattr(Image, "frombuffer", broken)
    assert np.array_equal(resample.pil_rgbx(img)[..., :3], np.asarray(img))


def _tile_both(monkeypatch, img, **opts):
    monkeypatch.setenv("IVL3_TILE_BACKEND", "pil")
    ref = tile_image(img, **opts)
    monkeypatch.setenv("IVL3_TILE_BACKEND", "numba")
    ours = tile_image(img, **opts)
    return ours, ref


IMAGES = [(1, 1), (448, 448), (896, 448), (447, 449), (640, 480), (97, 1301), (1301, 97), (1920, 1080),
          (800, 2400), (20000, 200), (5, 3000), (796, 448), (448, 796), (597, 448)]


@pytest.mark.parametrize("w,h", IMAGES)
def test_tile_image_equals_pil_path(monkeypatch, w, h):
    rng = np.random.default_rng(w * 31 + h)
    img = Image.fromarray(_content(w, h, (w + h) % 5, rng))
    for opts in ({}, {"max_tiles": 1}, {"max_tiles": 6, "norm": "clip"}, {"min_tiles": 2, "max_tiles": 4}):
        ours, ref = _tile_both(monkeypatch, img, **opts)
        assert ours.grid == ref.grid and ours.thumbnail == ref.thumbnail
        assert torch.equal(ours.pixel_values, ref.pixel_values), (w, h, opts)


def test_tile_image_equals_pil_path_many_shapes(monkeypatch):
    """Small tiles over many random shapes and budgets, other dtypes and norms, thumbnails included."""
    rng = np.random.default_rng(11)
    thumbs = 0
    for i, (w, h) in enumerate(rng.integers(1, 300, (80, 2))):
        img = Image.fromarray(_content(int(w), int(h), i % 5, rng))
        opts = {"tile_size": int(rng.choice([14, 28, 56])), "max_tiles": int(rng.choice([1, 4, 12])),
                "norm": ["imagenet", "clip", "siglip"][i % 3],
                "dtype": [torch.float32, torch.bfloat16, torch.float16][i % 3]}
        ours, ref = _tile_both(monkeypatch, img, **opts)
        assert ours.pixel_values.dtype == opts["dtype"]
        assert torch.equal(ours.pixel_values, ref.pixel_values), (int(w), int(h), opts)
        thumbs += ours.thumbnail
    assert thumbs >= 20


def test_backend_selection(monkeypatch):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8))
    calls = []
    real = resample.resize_normalise
    monkeypatch.setattr(resample, "resize_normalise", lambda *a, **k: calls.append(a[1]) or real(*a, **k))

    monkeypatch.delenv("IVL3_TILE_BACKEND", raising=False)
    assert _resampler() is resample
    tile_image(img)
    assert calls == [pick_grid(500, 300), (1, 1)]  # the grid, then the thumbnail

    calls.clear()
    monkeypatch.setenv("IVL3_TILE_BACKEND", "pil")
    assert _resampler() is None
    tile_image(img)
    assert calls == []

    monkeypatch.setenv("IVL3_TILE_BACKEND", "fast")
    with pytest.raises(ValueError, match="IVL3_TILE_BACKEND"):
        tile_image(img)


def test_without_numba_falls_back_to_pil(monkeypatch):
    import sys

    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 130, 3), dtype=np.uint8))
    monkeypatch.setenv("IVL3_TILE_BACKEND", "pil")
    ref = tile_image(img, tile_size=28).pixel_values
    monkeypatch.setitem(sys.modules, "ivl3_plugin.tile.resample", None)  # `import` now fails
    monkeypatch.delattr(sys.modules["ivl3_plugin.tile"], "resample")
    monkeypatch.delenv("IVL3_TILE_BACKEND")
    assert _resampler() is None
    assert torch.equal(tile_image(img, tile_size=28).pixel_values, ref)
    monkeypatch.setenv("IVL3_TILE_BACKEND", "numba")
    with pytest.raises(ImportError):
        tile_image(img, tile_size=28)


def test_a_pillow_that_resizes_differently_is_caught_and_falls_back(monkeypatch, caplog):
    """The once-per-process self-check: if our resize stops matching the installed Pillow (here: the
    pass-order rule switched off, as if Pillow changed it again), tiling warns and uses PIL's resize."""
    from ivl3_plugin.tile import tiler

    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 120, 3), dtype=np.uint8))
    monkeypatch.setenv("IVL3_TILE_BACKEND", "pil")
    ref = tile_image(img).pixel_values
    monkeypatch.delenv("IVL3_TILE_BACKEND")
    tiler._agrees_with_pil.cache_clear()
    monkeypatch.setattr(resample, "vertical_first", lambda *a: False)
    try:
        with caplog.at_level("WARNING", logger="ivl3_plugin.tile"):
            assert _resampler() is None
        assert "falls back to PIL" in caplog.text
        caplog.clear()
        with caplog.at_level("WARNING", logger="ivl3_plugin.tile"):
            assert torch.equal(tile_image(img).pixel_values, ref)
        assert caplog.text == ""  # warned once per process, not per image
        monkeypatch.setenv("IVL3_TILE_BACKEND", "numba")
        with pytest.raises(RuntimeError, match="differs from this Pillow"):
            tile_image(img)
    finally:
        tiler._agrees_with_pil.cache_clear()
    monkeypatch.undo()
    assert _resampler() is resample
