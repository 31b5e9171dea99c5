"""InternVL dynamic-resolution tiling, without torchvision.

Public API (the template and prediction call these):

- ``tile_image(image, *, tile_size=448, min_tiles=1, max_tiles=12, thumbnail=True, norm=None,
  mean=IMAGENET_MEAN, std=IMAGENET_STD, dtype=None (float32), max_pixels=DEFAULT_MAX_PIXELS)
  -> TileResult`` — ``TileResult.pixel_values`` is ``[n_tiles, 3, tile, tile]`` (row-major tiles,
  thumbnail last when the grid has more than one tile), ``TileResult.grid`` is ``(cols, rows)``,
  ``TileResult.thumbnail`` says whether one was appended, ``TileResult.n_tiles`` counts all.
- ``tile_images(images, *, max_tiles=12, video=False, frame_max_tiles=1, share_budget=True, **opts)``
  -> list of ``TileResult``: video frames get ``frame_max_tiles`` each; several images share
  ``max_tiles`` as ``tiles_per_image(max_tiles, n_images) == max(1, max_tiles // n_images)``.
- ``concat_pixel_values(results)`` -> one ``[sum n_tiles, 3, H, W]`` tensor.
- ``pick_grid(width, height, *, tile_size=448, min_tiles=1, max_tiles=12) -> (cols, rows)``;
  ``candidate_grids(min_tiles, max_tiles)``; ``tiles_per_image(max_tiles, n_images)``;
  ``tile_count(width, height, *, tile_size, min_tiles, max_tiles, thumbnail)`` -> tiles (thumbnail
  included) ``tile_image`` will return, without touching pixels: for token budgets.
- ``load_image(src, *, max_pixels=..., exif=True) -> PIL.Image`` (RGB, upright) from a path, bytes,
  file object, PIL image or numpy array; raises ``ImageLoadError`` / ``ImageTooLargeError`` naming the file.
- Normalisation constants ``IMAGENET_MEAN/STD``, ``CLIP_MEAN/STD``, ``SIGLIP_MEAN/STD`` and ``NORMS``.

The built-in plugin registers preprocessor ``internvl_dynamic``: a thin wrapper that calls
``tile_image``; templates tile through the preprocessor their ``TemplateSpec`` names.  Importing
this package does not import torch (tiling does).
"""
from .batch import concat_pixel_values, tile_images
from .grid import Grid, candidate_grids, pick_grid, tile_count, tiles_per_image
from .load import DEFAULT_MAX_PIXELS, ImageLoadError, ImageTooLargeError, load_image, to_rgb
from .tiler import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NORMS,
    SIGLIP_MEAN,
    SIGLIP_STD,
    TileResult,
    tile_image,
)

PREPROCESSOR_NAME = "internvl_dynamic"

__all__ = [
    "PREPROCESSOR_NAME",
    "Grid",
    "TileResult",
    "tile_image",
    "tile_images",
    "concat_pixel_values",
    "pick_grid",
    "candidate_grids",
    "tiles_per_image",
    "tile_count",
    "load_image",
    "to_rgb",
    "ImageLoadError",
    "ImageTooLargeError",
    "DEFAULT_MAX_PIXELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CLIP_MEAN",
    "CLIP_STD",
    "SIGLIP_MEAN",
    "SIGLIP_STD",
    "NORMS",
]
