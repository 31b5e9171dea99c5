"""Grid choice and pixels match InternVL's rule and ms-swift's ``transform_image``.

The grid reference below is written from the rule's description, not from
either implementation; ms-swift's own grid choice is checked as a second witness.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ivl3_plugin.tile import candidate_grids, pick_grid, tile_image

vision_utils = pytest.importorskip("swift.template.vision_utils")


def reference_grid(width, height, tile, min_tiles, max_tiles):
    """The rule, written out: scan grids by area; closest ratio wins; equal difference ->
    the later grid wins only if the image has more than half that grid's pixels.
    Equal-area grids are scanned in the order Python iterates the set of them (InternVL sorts a set)."""
    pool = set()
    for a in range(1, max_tiles + 1):
        for b in range(1, max_tiles + 1):
            if min_tiles <= a * b <= max_tiles:
                pool.add((a, b))
    order = []
    for area in range(min_tiles, max_tiles + 1):
        order += [g for g in pool if g[0] * g[1] == area]  # set order within one area
    chosen, chosen_diff = (1, 1), None
    for a, b in order:
        d = abs(width / height - a / b)
        if chosen_diff is None or d < chosen_diff:
            chosen, chosen_diff = (a, b), d
        elif d == chosen_diff and width * height > tile * tile * a * b / 2:
            chosen = (a, b)
    return chosen


def swift_grid(width, height, tile, min_tiles, max_tiles):
    ratios = sorted(
        {(i, j) for n in range(min_tiles, max_tiles + 1) for i in range(1, n + 1) for j in range(1, n + 1)
         if min_tiles <= i * j <= max_tiles},
        key=lambda x: x[0] * x[1],
    )
    return tuple(vision_utils._find_closest_aspect_ratio(width / height, ratios, width, height, tile))


def _sizes():
    sizes = set()
    for w in (1, 2, 3, 7, 13, 64, 100, 224, 333, 448, 500, 633, 634, 640, 896, 950, 951, 1024, 1280, 1920, 4000):
        for h in (1, 5, 12, 96, 240, 448, 480, 634, 720, 1080, 2000):
            sizes.add((w, h))
    # squares and 2:1 / 1:2 / 3:2 shapes straddle the "half the grid's pixels" thresholds (exact ratio ties)
    for s in range(600, 1400, 17):
        sizes |= {(s, s), (2 * s, s), (s, 2 * s), (3 * (s // 2), 2 * (s // 2))}
    sizes |= {(20000, 200), (200, 20000), (1, 1000), (1000, 1)}
    return sorted(sizes)


def _exact_ties(limit=12):
    """(w, h, tile, min, max) where two candidate grids are exactly equally close (found by search)."""
    found = []
    for max_tiles in (2, 3, 4, 6, 8, 12):
        for min_tiles in (1, 2, max_tiles):
            grids = candidate_grids(min_tiles, max_tiles)
            for w in range(1, 40):
                for h in range(1, 40):
                    diffs = sorted(abs(w / h - a / b) for a, b in grids)
                    if len(diffs) > 1 and diffs[0] == diffs[1]:
                        for tile in (4, 8, 14):
                            found.append((w, h, tile, min_tiles, max_tiles))
    return found


SIZES = _sizes()
TIES = _exact_ties()


def test_enough_cases():
    assert len(SIZES) >= 200
    assert len(TIES) >= 200


@pytest.mark.parametrize("max_tiles,min_tiles", [(12, 1), (6, 1), (1, 1), (24, 1), (12, 4), (6, 6), (40, 1)])
def test_grid_matches_rule_and_swift_over_sizes(max_tiles, min_tiles):
    for w, h in SIZES:
        ours = pick_grid(w, h, tile_size=448, min_tiles=min_tiles, max_tiles=max_tiles)
        assert ours == reference_grid(w, h, 448, min_tiles, max_tiles), (w, h)
        assert ours == swift_grid(w, h, 448, min_tiles, max_tiles), (w, h)
        assert min_tiles <= ours[0] * ours[1] <= max_tiles


def test_grid_exact_ties_follow_area_rule():
    changed_by_area = 0
    for w, h, tile, lo, hi in TIES:
        ours = pick_grid(w, h, tile_size=tile, min_tiles=lo, max_tiles=hi)
        assert ours == reference_grid(w, h, tile, lo, hi), (w, h, tile, lo, hi)
        assert ours == swift_grid(w, h, tile, lo, hi), (w, h, tile, lo, hi)
        # the tie-break must sometimes pick the later grid and sometimes keep the earlier one
        if ours != pick_grid(w, h, tile_size=10**6, min_tiles=lo, max_tiles=hi):
            changed_by_area += 1
    assert 0 < changed_by_area < len(TIES)


def test_square_threshold_is_strictly_more_than_half():
    # (1,1) vs (2,2): the bigger grid needs area > 0.5*448^2*4 = 401408, i.e. side >= 634
    assert pick_grid(633, 633) == (1, 1)
    assert pick_grid(634, 634) == (2, 2)
    # (2,2) vs (3,3): area > 0.5*448^2*9 = 903168, i.e. side >= 951
    assert pick_grid(950, 950) == (2, 2)
    assert pick_grid(951, 951) == (3, 3)


def _image(w, h, seed):
    """Noise plus a gradient: noise is the hardest case for resize parity, the gradient catches flips."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ramp = (np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))).astype(np.uint8)
    return Image.fromarray(np.where(rng.random((h, w, 1)) < 0.5, noise, ramp).astype(np.uint8))


@pytest.fixture(params=["numba", "pil"])
def backend(request, monkeypatch):
    """Both tilers against ms-swift: the numba resampler (default) and the PIL + numpy fallback."""
    if request.param == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("IVL3_TILE_BACKEND", request.param)
    return request.param


PIXEL_SIZES_448 = [(1, 1), (96, 96), (640, 480), (1920, 1080), (634, 634), (300, 1200), (5000, 120)]


@pytest.mark.parametrize("w,h", PIXEL_SIZES_448)
def test_pixels_match_swift_transform_image_448(w, h, backend):
    img = _image(w, h, seed=w * 7 + h)
    ours = tile_image(img)
    ref = vision_utils.transform_image(img, input_size=448, max_num=12)
    assert ours.pixel_values.shape == ref.shape
    assert ours.pixel_values.dtype == ref.dtype
    assert float((ours.pixel_values - ref).abs().max()) <= 1e-5


def test_pixels_match_swift_transform_image_many_sizes_small_tiles(backend):
    """Same pipeline at tile 28 (fast) over many shapes and budgets, including tie sizes."""
    rng = np.random.default_rng(0)
    shapes = [(int(w), int(h)) for w, h in rng.integers(1, 400, (70, 2))] + [(s, s) for s in (19, 20, 42, 43, 60, 61)]
    checked = 0
    for i, (w, h) in enumerate(shapes):
        for max_num in (1, 6, 12):
            img = _image(w, h, seed=i)
            ours = tile_image(img, tile_size=28, max_tiles=max_num)
            ref = vision_utils.transform_image(img, input_size=28, max_num=max_num)
            assert ours.pixel_values.shape == ref.shape, (w, h, max_num)
            assert float((ours.pixel_values - ref).abs().max()) <= 1e-5, (w, h, max_num)
            checked += 1
    assert checked >= 200


def test_bf16_output_matches_swift_then_cast(backend):
    """ms-swift's template casts transform_image's float32 to the model dtype; ours writes bf16 directly."""
    import torch

    for w, h in [(640, 480), (97, 301)]:
        img = _image(w, h, seed=5)
        ours = tile_image(img, tile_size=56, dtype=torch.bfloat16).pixel_values
        ref = vision_utils.transform_image(img, input_size=56, max_num=12).to(torch.bfloat16)
        assert ours.dtype == torch.bfloat16 and ours.shape == ref.shape
        diff = (ours.float() - ref.float()).abs()
        ulp = ref.float().abs().clamp_min(1e-3) * 2.0 ** -7  # one bf16 step: a float32 rounding may flip it
        assert bool((diff <= ulp).all())
        assert float((diff > 0).float().mean()) < 0.01
