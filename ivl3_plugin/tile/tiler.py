"""Cut an image into InternVL tiles: PIL's exact bicubic resize and the normalisation, fused, in numba.

ms-swift (like InternVL's reference code) resizes with PIL, crops every tile into
its own PIL image and runs torchvision's ToTensor + Normalize per tile.  Parity
with it (float output within 1e-5) needs every resized uint8 pixel to be PIL's,
and PIL's resize was most of the time, so ``resample.py`` redoes Pillow's 8-bit
bicubic resampling bit for bit (same fixed-point arithmetic, same pass order) with
vectorised numba loops, and writes each finished row straight into the
normalised float32 tiles (``pixel * scale + bias``): no resized image, no crops,
no per-tile tensors.  The source pixels come out of PIL in its own 4-byte layout
(``resample.pil_rgbx``), cheaper than ``np.asarray``.  Frames already at tile size
skip the resize and take one uint8 HWC -> float32 CHW pass.  See docs/benchmarks.md.

Fallback (the setting ``TILE_BACKEND=pil``, or numba not installed): PIL's ``resize``
(the very call ms-swift makes), the tiles as a reshaped view of it, and a
per-channel numpy multiply and add.  Both paths give identical tensors
(``tests/test_tile_resample.py``); once per process a self-check against the installed
Pillow falls back to PIL (with a warning) should a Pillow release resample differently.
numba compiles on first use (a few seconds; its on-disk cache makes later processes start in
well under a second).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..settings import TILE_BACKEND
from ..shared.layout import IMAGENET_MEAN, IMAGENET_STD, TILE_SIZE
from .grid import Grid, pick_grid
from .load import DEFAULT_MAX_PIXELS, load_image

if TYPE_CHECKING:  # pragma: no cover - torch is imported when a tile is made, not when tile is imported
    import torch

log = logging.getLogger("ivl3_plugin.tile")

Triple = Tuple[float, float, float]
CLIP_MEAN: Triple = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: Triple = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN: Triple = (0.5, 0.5, 0.5)
SIGLIP_STD: Triple = (0.5, 0.5, 0.5)
NORMS: Dict[str, Tuple[Triple, Triple]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "clip": (CLIP_MEAN, CLIP_STD),
    "siglip": (SIGLIP_MEAN, SIGLIP_STD),
}


@dataclass(frozen=True)
class TileResult:
    """``pixel_values [n_tiles, 3, tile, tile]`` (thumbnail last, if any) and the ``(cols, rows)`` grid."""

    pixel_values: "torch.Tensor"
    grid: Grid
    thumbnail: bool

    @property
    def n_tiles(self) -> int:
        """Tiles fed to the model, thumbnail included (what ``<IMG_CONTEXT>`` counts multiply)."""
        return int(self.pixel_values.shape[0])


def _scale_bias(mean: Sequence[float], std: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """``(x/255 - mean)/std == x*scale + bias``, per channel, computed in float64 then rounded once to float32."""
    if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
        raise ValueError(f"mean and std need 3 values each (std non-zero), got mean={mean}, std={std}")
    m = np.asarray(mean, dtype=np.float64)
    s = np.asarray(std, dtype=np.float64)
    return (1.0 / (255.0 * s)).astype(np.float32), (-m / s).astype(np.float32)


def tile_image(
    image: Any,
    *,
    tile_size: int = TILE_SIZE,
    min_tiles: int = 1,
    max_tiles: int = 12,
    thumbnail: bool = True,
    norm: Optional[str] = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: "Optional[torch.dtype]" = None,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
) -> TileResult:
    """Tile one image exactly as InternVL's ``dynamic_preprocess`` + transform does.

    ``image``: anything :func:`load_image` accepts.  ``norm`` ("imagenet",
    "clip", "siglip") overrides ``mean``/``std``.  The thumbnail (the whole image
    at ``tile_size``) is appended only when the grid has more than one tile.  ``dtype``: float32 by default.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    if norm is not None:
        try:
            mean, std = NORMS[norm]
        except KeyError:
            raise ValueError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}") from None
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    img = load_image(image, max_pixels=max_pixels)
    cols, rows = pick_grid(img.width, img.height, tile_size=tile_size, min_tiles=min_tiles, max_tiles=max_tiles)
    n_grid = cols * rows
    with_thumb = thumbnail and n_grid > 1
    t = tile_size

    scale, bias = _scale_bias(mean, std)
    n = n_grid + with_thumb
    resample = _resampler()
    if resample is not None:  # numba: PIL's bicubic bits, resized and normalised row by row
        direct = dtype in (torch.float32, torch.bfloat16)  # bf16: float32 math, rounded once on store
        out = torch.empty((n, 3, t, t), dtype=dtype if direct else torch.float32)
        planes = (out.view(torch.int16) if out.dtype == torch.bfloat16 else out).numpy()
        src = resample.pil_rgbx(img)
        resample.resize_normalise(src, (cols, rows), t, scale, bias, planes[:n_grid])
        if with_thumb:
            resample.resize_normalise(src, (1, 1), t, scale, bias, planes[n_grid:])
    else:
        out = torch.empty((n, 3, t, t), dtype=torch.float32)
        planes = out.numpy()
        size = (t * cols, t * rows)  # frames stored at tile size (`ivl3 convert --frame-size`) need no resize
        resized = img if img.size == size else img.resize(size, Image.Resampling.BICUBIC)
        # [rows*t, cols*t, 3] -> [rows, t, cols, t, 3] -> [rows, cols, 3, t, t]: row-major tiles, a view
        tiles = np.asarray(resized).reshape(rows, t, cols, t, 3).transpose(0, 2, 4, 1, 3)
        _normalise(tiles, planes[:n_grid].reshape(rows, cols, 3, t, t), scale, bias)
        if with_thumb:
            thumb = np.asarray(img.resize((t, t), Image.Resampling.BICUBIC)).transpose(2, 0, 1)
            _normalise(thumb[None, None], planes[n_grid:].reshape(1, 1, 3, t, t), scale, bias)
    if out.dtype != dtype:  # fp16 (and bf16 on the PIL path): computed in float32, rounded once
        out = out.to(dtype)
    return TileResult(out, (cols, rows), with_thumb)


def _resampler():
    """The numba resampler module, or None for the PIL + numpy path (setting ``TILE_BACKEND=pil``, or no numba)."""
    backend = TILE_BACKEND.get()
    if backend == "pil":
        return None
    try:
        from . import resample
    except ImportError:
        if backend == "numba":
            raise
        return None
    if not _agrees_with_pil(resample):
        if backend == "numba":
            raise RuntimeError(f"the numba tiler's bicubic resize differs from this Pillow's ({Image.__version__}); "
                               f"unset {TILE_BACKEND.name} to fall back to PIL")
        return None
    return resample


@lru_cache(maxsize=None)
def _agrees_with_pil(resample) -> bool:
    """Once per process: our resize equals the installed Pillow's on a few small cases covering both pass
    orders, up- and downscaling.  Pillow has changed its resampling before (the pass order in 13), so a
    Pillow we were not tested against is caught here instead of silently shifting pixels."""
    rng = np.random.default_rng(0)
    for (w, h), size in (((97, 61), (40, 23)), ((23, 131), (19, 17)), ((13, 9), (45, 31)), ((50, 50), (50, 17))):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))
        if not np.array_equal(resample.resize(img, size), want):
            log.warning("the numba tiler's bicubic resize differs from this Pillow's (%s); tiling falls back "
                        "to PIL's resize to keep pixels identical", Image.__version__)  # once: the result is cached
            return False
    return True


def _normalise(src: np.ndarray, dst: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> None:
    """``dst[..., c, :, :] = src[..., c, :, :] * scale[c] + bias[c]`` for uint8 ``src``, float32 ``dst`` views."""
    for c in range(3):
        np.multiply(src[:, :, c], scale[c], out=dst[:, :, c])
        dst[:, :, c] += bias[c]
