"""Turn any image input into an upright 8-bit RGB ``PIL.Image``.

Accepts paths, bytes, file objects, PIL images and numpy arrays.  Transparent
images are composited on white (what a viewer shows; black would invent dark
borders), 16-bit images are scaled rather than clipped, EXIF orientation is
applied, and oversized files are refused before decoding, naming the file.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Any, Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL's own default (~89.5 M pixels, a 1 GiB RGB bitmap); PIL itself refuses twice that.
DEFAULT_MAX_PIXELS = 89_478_485
WHITE = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageLoadError(ValueError):
    """An image could not be read; the message names the file."""


class ImageTooLargeError(ImageLoadError):
    """An image has more pixels than allowed (decompression-bomb guard)."""


def _describe(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return repr(os.fspath(src))
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes>"
    name = getattr(src, "name", None)
    return repr(name) if isinstance(name, str) else f"<{type(src).__name__}>"


def _open(src: Any, label: str, max_pixels: Optional[int]) -> Image.Image:
    if isinstance(src, (str, os.PathLike)):
        if not os.path.isfile(src):
            raise ImageLoadError(f"image file {label} does not exist")
        fp: Any = src
    elif isinstance(src, (bytes, bytearray, memoryview)):
        fp = io.BytesIO(bytes(src))
    else:
        fp = src  # a binary file object
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides below
            img = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image {label} is too large to decode safely: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageLoadError(f"cannot read image {label}: {exc}") from exc
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        img.close()
        raise ImageTooLargeError(
            f"image {label} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} "
            "(a decompression-bomb guard; raise max_pixels if the file is trusted)"
        )
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"cannot decode image {label}: {exc}") from exc
    return img


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """Integer data above 8 bits is scaled to 0..255; float data in [0, 1] is scaled by 255."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if np.issubdtype(values.dtype, np.floating):
        v = values.astype(np.float32)
        if v.size and np.nanmax(v) <= 1.0:
            v = v * 255.0
        return np.clip(np.rint(np.nan_to_num(v)), 0, 255).astype(np.uint8)
    if np.issubdtype(values.dtype, np.integer):
        v = values.astype(np.int64)
        top = int(v.max()) if v.size else 0
        if values.dtype.itemsize == 2:
            bits = 16  # 16-bit storage means 16-bit data, even when this image is dark
        elif top <= 255:
            return np.clip(v, 0, 255).astype(np.uint8)
        else:
            bits = 16 if top <= 65535 else 32
        full = (1 << bits) - 1
        return ((np.clip(v, 0, full) * 255 + full // 2) // full).astype(np.uint8)
    raise TypeError(f"unsupported array dtype {values.dtype}")


def _from_array(arr: np.ndarray, label: str) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        mode = "L"
    elif arr.ndim == 3 and arr.shape[2] in (2, 3, 4):
        mode = {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    else:
        raise ImageLoadError(f"image {label}: expected an HxW or HxWxC (C in 1..4) array, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageLoadError(f"image {label} is empty (shape {arr.shape})")
    try:
        arr8 = _to_8bit(arr)
    except TypeError as exc:
        raise ImageLoadError(f"image {label}: {exc}") from exc
    return Image.fromarray(np.ascontiguousarray(arr8), mode=mode)


def _upright(img: Image.Image) -> Image.Image:
    exif = img.getexif() if hasattr(img, "getexif") else None
    if exif and exif.get(0x0112, 1) != 1:  # 0x0112: Orientation
        img = ImageOps.exif_transpose(img)
    return img


def to_rgb(img: Image.Image, label: str = "<image>", background=WHITE) -> Image.Image:
    """8-bit RGB of any PIL mode; transparency composited on ``background``."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
        mode = img.mode
    elif mode in ("L", "1") and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode.startswith("I") or mode == "F":  # I, I;16, I;16B, I;16L, I;16N, F: scale, do not clip
        return Image.fromarray(_to_8bit(np.asarray(img)), mode="L").convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(f"image {label}: cannot convert mode {mode!r} to RGB: {exc}") from exc


def load_image(src: Any, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, exif: bool = True) -> Image.Image:
    """An upright 8-bit RGB image from a path, bytes, file object, PIL image or numpy array.

    ``max_pixels`` guards encoded inputs (paths, bytes, files) before decoding;
    ``None`` turns the guard off (PIL still refuses more than twice its own limit).
    """
    label = _describe(src)
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, np.ndarray):
        return to_rgb(_from_array(src, label), label)
    elif isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(src, "read"):
        img = _open(src, label, max_pixels)
    elif hasattr(src, "numpy") and callable(src.numpy):  # a CPU tensor, HxWxC
        return to_rgb(_from_array(src.numpy(), label), label)
    else:
        raise ImageLoadError(f"cannot load an image from {type(src).__name__}: pass a path, bytes, PIL image or array")
    if img.width < 1 or img.height < 1:
        raise ImageLoadError(f"image {label} is empty ({img.width}x{img.height})")
    if exif:
        img = _upright(img)
    return to_rgb(img, label)
