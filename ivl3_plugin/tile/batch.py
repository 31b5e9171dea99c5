"""Tile budgets for samples with several images or video frames (InternVL's trainer rules)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Sequence

from .grid import tiles_per_image
from .tiler import TileResult, tile_image

if TYPE_CHECKING:  # pragma: no cover
    import torch


def tile_images(
    images: Sequence[Any],
    *,
    max_tiles: int = 12,
    video: bool = False,
    frame_max_tiles: int = 1,
    share_budget: bool = True,
    **options: Any,
) -> List[TileResult]:
    """Tile every image of one sample.

    Video frames get ``frame_max_tiles`` each (default 1: a frame is one tile,
    no thumbnail).  Several still images share ``max_tiles`` when
    ``share_budget``: each gets ``max(1, max_tiles // n_images)``.
    """
    if not images:
        return []
    if video:
        budget = frame_max_tiles
    elif share_budget:
        budget = tiles_per_image(max_tiles, len(images))
    else:
        budget = max_tiles
    min_tiles = min(options.pop("min_tiles", 1), budget)
    return [tile_image(img, max_tiles=budget, min_tiles=min_tiles, **options) for img in images]


def concat_pixel_values(results: Sequence[TileResult]) -> "torch.Tensor":
    """All tiles of a sample in one ``[sum n_tiles, 3, H, W]`` tensor (the model's ``pixel_values``)."""
    import torch

    return torch.cat([r.pixel_values for r in results]) if len(results) > 1 else results[0].pixel_values
