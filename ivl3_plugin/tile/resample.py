"""Pillow's 8-bit bicubic resize, bit for bit, in numba, fused with the tile normalisation.

Why: parity with ms-swift (1e-5 after normalisation) needs every resized uint8 pixel to equal
``PIL.Image.resize(..., BICUBIC)``, and that PIL call was most of the tiling time.  Same arithmetic
(float64 weights, 22-bit fixed-point taps rounded half away from zero, int32 sums from 1 << 21, uint8
between the passes, Pillow's pass order), laid out so every inner loop is contiguous int32 lanes that
LLVM vectorises: pixels are 4 bytes (RGBX, PIL's own layout) so a pixel moves as one uint32; the
vertical pass sums whole rows, up to 4 taps per sweep; the horizontal pass transposes ``R`` rows to
``[x, row]`` so each tap adds one contiguous ``R*4``-byte line.  The passes are fused through a small
ring buffer (no intermediate image) and finished rows go straight into the float32 tiles.
Single-threaded (we count per core); no ``fastmath`` (it could reorder the float64 weight math).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from PIL import Image

PRECISION_BITS = 22  # Pillow: 32 - 8 bits of result - 2 bits of headroom
HALF = 1 << (PRECISION_BITS - 1)
R = 16  # rows per horizontal block
L = R * 4  # lanes of the horizontal pass: R rows x RGBX

# Pillow 13 runs the vertical pass first when the height shrinks more than twice as much as the width
# (python-pillow/Pillow#9549); older Pillow always runs the horizontal pass first.
_PILLOW_VERTICAL_FIRST = int(Image.__version__.split(".")[0]) >= 13

_jit = numba.njit(cache=True, nogil=True)


def vertical_first(in_w: int, in_h: int, out_w: int, out_h: int) -> bool:
    """Whether the installed Pillow resizes ``in -> out`` vertical pass first (it matters for the bits)."""
    return _PILLOW_VERTICAL_FIRST and out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)


@_jit
def _bicubic(x):
    # Keys cubic with a = -0.5, in Pillow's evaluation order
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * -0.5
    return 0.0


@_jit
def coeffs(in_size, out_size):
    """Per output pixel: first input pixel, tap count, int32 fixed-point weights (zero-padded to a multiple of 4)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    inv = 1.0 / filterscale  # Pillow multiplies by the inverse; dividing can differ in the last bit
    start = np.empty(out_size, np.int64)
    count = np.empty(out_size, np.int64)
    kk = np.zeros((out_size, (ksize + 3) // 4 * 4), np.int32)
    w = np.empty(ksize, np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        n = min(int(center + support + 0.5), in_size) - xmin
        ww = 0.0
        for x in range(n):
            w[x] = _bicubic((x + xmin - center + 0.5) * inv)
            ww += w[x]
        for x in range(n):
            v = w[x] / ww if ww != 0.0 else w[x]
            kk[xx, x] = int(v * (1 << PRECISION_BITS) - 0.5) if v < 0 else int(v * (1 << PRECISION_BITS) + 0.5)
        start[xx] = xmin
        count[xx] = n
    return start, count, kk


@_jit
def _clip8(v):
    v >>= PRECISION_BITS
    return 0 if v < 0 else (255 if v > 255 else v)


@numba.njit(cache=True, nogil=True, inline="always")
def _mac(acc, n, r0, r1, r2, r3, k, g, m):
    """``acc[:n] += sum_{j<m} k[g+j] * r_j[:n]`` for m <= 4 taps: one sweep over the lanes per 4 taps."""
    c0, c1, c2, c3 = k[g], k[g + 1], k[g + 2], k[g + 3]
    if m == 4:
        for i in range(n):
            acc[i] += r0[i] * c0 + r1[i] * c1 + r2[i] * c2 + r3[i] * c3
    elif m == 3:
        for i in range(n):
            acc[i] += r0[i] * c0 + r1[i] * c1 + r2[i] * c2
    elif m == 2:
        for i in range(n):
            acc[i] += r0[i] * c0 + r1[i] * c1
    else:
        for i in range(n):
            acc[i] += r0[i] * c0


@_jit
def _hblock(src, s0, nr, hs, hn, hk, tb, acc, ob, dst, d0, dmod):
    """Horizontal pass over rows ``s0..s0+nr`` of RGBX ``src`` into rows ``(d0 + r) % dmod`` of ``dst``.
    Lanes of rows >= nr are computed and dropped."""
    blk, tb32, ob32, dst32 = src[s0:s0 + nr].view(np.uint32), tb.view(np.uint32), ob.view(np.uint32), dst.view(np.uint32)
    for i in range(blk.shape[1]):  # transpose: tb32[x, r] = pixel x of row r
        for r in range(nr):
            tb32[i, r] = blk[r, i]
    for xx in range(hs.shape[0]):
        b, n = hs[xx], hn[xx]
        for i in range(L):
            acc[i] = HALF
        for g in range(0, n, 4):  # up to 4 taps per sweep over the lanes
            _mac(acc, L, tb[b + g], tb[b + g + 1], tb[b + g + 2], tb[b + g + 3], hk[xx], g, min(n - g, 4))
        o = ob[xx]
        for i in range(L):
            o[i] = _clip8(acc[i])
    for r in range(nr):  # transpose back: output row r is column r of ob32
        d = d0 + r
        drow, col = dst32[d - dmod if d >= dmod else d], ob32[:, r]
        for xx in range(hs.shape[0]):
            drow[xx] = col[xx]


@_jit
def _vrow(src, mod, base, n, k, acc, out):
    """One vertical-pass row: ``out = clip(sum_j k[j] * src[(base + j) % mod])``."""
    for i in range(out.shape[0]):
        acc[i] = HALF
    for g in range(0, n, 4):
        j = base + g
        _mac(acc, out.shape[0], src[j % mod], src[(j + 1) % mod], src[(j + 2) % mod], src[(j + 3) % mod], k, g,
             min(n - g, 4))
    for i in range(out.shape[0]):  # a separate loop keeps the lanes int32 (numba widens expressions to int64)
        out[i] = _clip8(acc[i])


@_jit
def _emit_row(row, yy, out, out16, tmp, cols, th, tw, scale, bias):
    """Write resized row ``yy`` (RGBX bytes) into the tiles: ``pixel * scale + bias`` in float32, or,
    when ``out16`` is not empty, its bfloat16 bits there (round to nearest even, as torch's ``.to``)."""
    tr = yy // th
    py = yy - tr * th
    bf16 = out16.shape[0] > 0
    tmp32 = tmp.view(np.uint32)
    for tc in range(cols):
        seg = row[tc * tw * 4:(tc + 1) * tw * 4]
        for c in range(3):
            o = tmp if bf16 else out[tr * cols + tc, c, py]
            s, b = scale[c], bias[c]
            for px in range(tw):
                o[px] = np.float32(seg[4 * px + c]) * s + b
            if bf16:
                o16 = out16[tr * cols + tc, c, py]
                for px in range(tw):
                    u = tmp32[px]
                    o16[px] = (u + 0x7FFF + ((u >> 16) & 1)) >> 16


@_jit
def _resize_tiles(src, cols, rows, th, tw, scale, bias, out, out16, vfirst):
    """Resize RGBX ``src`` [H, W, 4] to ``(cols*tw, rows*th)`` as Pillow does and write the normalised tiles
    into float32 ``out``, or as bfloat16 bits into ``out16`` when that is not empty."""
    H, W = src.shape[0], src.shape[1]
    w, h = cols * tw, rows * th
    src8 = src.reshape(H, W * 4)
    tmp = np.empty(tw, np.float32)
    if w == W and h == H:  # no resize: only the normalisation
        for y in range(H):
            _emit_row(src8[y], y, out, out16, tmp, cols, th, tw, scale, bias)
        return
    acc = np.empty(max(max(w, W) * 4, L), np.int32)
    row = np.empty(w * 4, np.uint8)
    vs, vn, vk = coeffs(H, h)
    if w == W:  # vertical pass only
        for yy in range(h):
            _vrow(src8, H, vs[yy], vn[yy], vk[yy], acc, row)
            _emit_row(row, yy, out, out16, tmp, cols, th, tw, scale, bias)
        return
    # the whole image is resized, so the taps span columns 0..W and rows 0..H exactly
    hs, hn, hk = coeffs(W, w)
    tb = np.zeros((W + 3, L), np.uint8)  # transposed input rows; + 3: _mac always takes 4 row views
    ob = np.empty((w, L), np.uint8)  # transposed output rows
    if h == H or vfirst:  # horizontal pass last, R output rows at a time
        vbuf, blk = np.empty((R, W * 4), np.uint8), np.empty((R, w * 4), np.uint8)
        for y0 in range(0, h, R):
            nr = min(R, h - y0)
            if h == H:
                _hblock(src8, y0, nr, hs, hn, hk, tb, acc, ob, blk, 0, R)
            else:
                for r in range(nr):
                    _vrow(src8, H, vs[y0 + r], vn[y0 + r], vk[y0 + r], acc, vbuf[r])
                _hblock(vbuf, 0, nr, hs, hn, hk, tb, acc, ob, blk, 0, R)
            for r in range(nr):
                _emit_row(blk[r], y0 + r, out, out16, tmp, cols, th, tw, scale, bias)
        return
    # horizontal first: rows are made R at a time into a ring buffer just before the vertical
    # pass needs them (its window only moves down), so they are still in cache
    cap = vk.shape[1] + R
    ring = np.empty((cap, w * 4), np.uint8)
    done = 0
    for yy in range(h):
        while done < vs[yy] + vn[yy]:
            nr = min(R, H - done)
            _hblock(src8, done, nr, hs, hn, hk, tb, acc, ob, ring, done % cap, cap)
            done += nr
        _vrow(ring, cap, vs[yy], vn[yy], vk[yy], acc, row)
        _emit_row(row, yy, out, out16, tmp, cols, th, tw, scale, bias)


def pil_rgbx(img: Image.Image) -> np.ndarray:
    """An RGB PIL image's pixels as ``[H, W, 4]`` uint8 (RGBX), copied row by row from PIL's own
    4-byte layout; ``np.asarray(img)`` repacks to 3 bytes through ``tobytes`` and is several times slower."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    img.load()
    w, h = img.size
    out = np.empty((h, w, 4), np.uint8)
    try:
        view = Image.frombuffer("RGBX", (w, h), out, "raw", "RGBX", 0, 1)  # shares ``out``'s memory
        view.im.paste(img.im, (0, 0, w, h))
    except Exception:  # noqa: BLE001 - an unexpected Pillow: the slow, plain way
        out[:, :, :3] = np.asarray(img.convert("RGB"))
    return out


def _rgbx(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"need an HxWx3 (RGB) or HxWx4 (RGBX) uint8 image, got {a.dtype} {a.shape}")
    if a.shape[2] == 4:
        return np.ascontiguousarray(a)
    out = np.empty(a.shape[:2] + (4,), np.uint8)
    out[:, :, :3] = a
    return out


def resize_normalise(image: np.ndarray, grid, tile: int, scale: np.ndarray, bias: np.ndarray,
                     out: np.ndarray) -> None:
    """Resize an RGB(X) uint8 image to ``(tile*cols, tile*rows)`` exactly as PIL's bicubic resize and
    write ``out[k] = tile k (row-major) * scale + bias``, ``out`` ``[cols*rows, 3, tile, tile]`` float32,
    or uint16 holding bfloat16 bits (a ``torch.bfloat16`` tensor's ``.view(torch.int16)`` numpy view).

    A thumbnail is the same call with ``grid=(1, 1)``.  An image already at the target size is only
    normalised (one pass, uint8 HWC -> float32 CHW)."""
    cols, rows = grid
    src = _rgbx(image)
    shape = (cols * rows, 3, tile, tile)
    if out.dtype not in (np.float32, np.uint16, np.int16) or out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 or (bfloat16 bits) uint16 {shape}, got {out.dtype} {out.shape}")
    if out.dtype == np.float32:
        out32, out16 = out, np.empty((0, 3, tile, tile), np.uint16)
    else:
        out32, out16 = np.empty((0, 3, tile, tile), np.float32), out.view(np.uint16)
    h, w = src.shape[:2]
    vf = vertical_first(w, h, cols * tile, rows * tile)
    _resize_tiles(src, cols, rows, tile, tile, np.asarray(scale, np.float32), np.asarray(bias, np.float32),
                  out32, out16, vf)


def resize(image: np.ndarray, size) -> np.ndarray:
    """``np.asarray(Image.fromarray(image).resize(size, BICUBIC))`` for an RGB(X) uint8 array, bit for bit."""
    w, h = size
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive, got {size}")
    src = _rgbx(image)
    out = np.empty((1, 3, h, w), np.float32)
    one, zero = np.ones(3, np.float32), np.zeros(3, np.float32)
    _resize_tiles(src, 1, 1, h, w, one, zero, out, np.empty((0, 3, h, w), np.uint16),
                  vertical_first(src.shape[1], src.shape[0], w, h))
    return out[0].transpose(1, 2, 0).astype(np.uint8)
