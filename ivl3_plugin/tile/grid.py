"""Which tile grid an image gets: InternVL's dynamic-resolution rule, to the bit.

A grid is ``(cols, rows)``: the image is resized to ``(tile*cols, tile*rows)``
pixels (width, height) and cut into ``cols*rows`` tiles.  The rule is
InternVL's ``dynamic_preprocess``: of all grids with ``min_tiles <= cols*rows
<= max_tiles`` (ordered by area), the one whose ``cols/rows`` is closest to the
image's ``width/height`` wins; on an exactly equal difference a later grid takes
over only when the image has more than half the pixels of that grid.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

from ..shared.layout import TILE_SIZE

Grid = Tuple[int, int]


@lru_cache(maxsize=64)
def candidate_grids(min_tiles: int = 1, max_tiles: int = 12) -> Tuple[Grid, ...]:
    """All grids with ``min_tiles <= cols*rows <= max_tiles``, smallest area first.

    Grids of equal area keep the order in which Python iterates a set of these
    tuples, because that is what InternVL (and ms-swift) sort: on an exact tie
    between e.g. (2, 3) and (3, 2) that order decides the winner.
    """
    if min_tiles < 1 or max_tiles < min_tiles:
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got min_tiles={min_tiles}, max_tiles={max_tiles}")
    grids = {
        (cols, rows)
        for n in range(min_tiles, max_tiles + 1)
        for cols in range(1, n + 1)
        for rows in range(1, n + 1)
        if min_tiles <= cols * rows <= max_tiles
    }
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def pick_grid(width: int, height: int, *, tile_size: int = TILE_SIZE, min_tiles: int = 1, max_tiles: int = 12) -> Grid:
    """The ``(cols, rows)`` grid InternVL chooses for a ``width x height`` image."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    aspect = width / height
    area = width * height
    half_tile_area = 0.5 * tile_size * tile_size
    best: Grid = (1, 1)
    best_diff = float("inf")
    for grid in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best, best_diff = grid, diff
        elif diff == best_diff and area > half_tile_area * grid[0] * grid[1]:
            best = grid
    return best


def tiles_per_image(max_tiles: int, n_images: int) -> int:
    """Tile budget of each image when ``n_images`` share ``max_tiles`` (InternVL's trainer rule)."""
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    return max(1, max_tiles // n_images)


def tile_count(
    width: int, height: int, *, tile_size: int = TILE_SIZE, min_tiles: int = 1, max_tiles: int = 12, thumbnail: bool = True
) -> int:
    """How many tiles :func:`~ivl3_plugin.tile.tile_image` will return, without touching pixels (token budgets)."""
    cols, rows = pick_grid(width, height, tile_size=tile_size, min_tiles=min_tiles, max_tiles=max_tiles)
    return cols * rows + (1 if thumbnail and cols * rows > 1 else 0)
