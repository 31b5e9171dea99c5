"""Every input kind and edge size the tiler must accept, and the errors it must give."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from ivl3_plugin.tile import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageLoadError,
    ImageTooLargeError,
    load_image,
    tile_image,
)


def _norm(rgb):
    """What a tile of one flat colour must hold after ImageNet normalisation."""
    return [(v / 255 - m) / s for v, m, s in zip(rgb, IMAGENET_MEAN, IMAGENET_STD)]


def _flat(result, rgb, atol=1e-5):
    pv = result.pixel_values
    for c, want in enumerate(_norm(rgb)):
        assert torch.allclose(pv[:, c], torch.full_like(pv[:, c], want), atol=atol), (c, want)


def _png_header_only(width, height):
    """A PNG that claims width x height but holds no pixels: enough for PIL's size check."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- sources


def test_path_bytes_fileobj_pil_and_array_give_the_same_tiles(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(arr).save(path)
    want = tile_image(Image.fromarray(arr))
    assert want.grid == (3, 2)
    for src in (str(path), path, path.read_bytes(), bytearray(path.read_bytes()), io.BytesIO(path.read_bytes()),
                arr, torch.from_numpy(arr)):
        got = tile_image(src)
        assert got.grid == want.grid
        assert torch.equal(got.pixel_values, want.pixel_values), type(src)


def test_array_layouts_and_dtypes():
    assert load_image(np.full((4, 6), 7, np.uint8)).getpixel((0, 0)) == (7, 7, 7)
    assert load_image(np.full((4, 6, 1), 9, np.uint8)).getpixel((0, 0)) == (9, 9, 9)
    assert load_image(np.full((4, 6), 65535, np.uint16)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.full((4, 6), 32896, np.uint16)).getpixel((0, 0)) == (128, 128, 128)
    assert load_image(np.full((4, 6, 3), 0.5, np.float32)).getpixel((0, 0)) == (128, 128, 128)
    assert load_image(np.ones((4, 6), bool)).getpixel((0, 0)) == (255, 255, 255)
    rgba = np.zeros((4, 6, 4), np.uint8)  # fully transparent black -> white
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(np.zeros((0, 3, 3), np.uint8))
    with pytest.raises(ImageLoadError, match="dict"):
        load_image({"not": "an image"})


# ---------------------------------------------------------------- modes


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 128))  # half-transparent red
    got = load_image(rgba).getpixel((0, 0))
    assert got[0] == 255 and abs(got[1] - 127) <= 1 and abs(got[2] - 127) <= 1
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    _flat(tile_image(clear), (255, 255, 255))
    la = Image.new("LA", (10, 10), (0, 0))
    assert load_image(la).getpixel((0, 0)) == (255, 255, 255)
    path = tmp_path / "la.png"
    Image.new("LA", (10, 10), (0, 255)).save(path)  # opaque black
    assert load_image(path).getpixel((0, 0)) == (0, 0, 0)


def test_palette_with_and_without_transparency(tmp_path):
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert load_image(p).getpixel((0, 0)) == (10, 200, 30)
    path = tmp_path / "p.png"
    p.save(path, transparency=1)  # index 1 transparent -> white
    reread = Image.open(path)
    assert reread.mode == "P" and "transparency" in reread.info
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_grey_16bit_and_cmyk(tmp_path):
    assert load_image(Image.new("L", (5, 5), 77)).getpixel((2, 2)) == (77, 77, 77)
    path16 = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 9), 65535, np.uint16)).save(path16)
    assert Image.open(path16).mode.startswith("I")
    assert load_image(path16).getpixel((0, 0)) == (255, 255, 255)  # scaled, and not clipped from 65535
    dark = tmp_path / "dark16.png"
    Image.fromarray(np.full((6, 9), 200 * 257, np.uint16)).save(dark)
    assert load_image(dark).getpixel((0, 0)) == (200, 200, 200)
    cmyk = Image.new("CMYK", (12, 8), (0, 255, 255, 0))  # pure red in CMYK
    cpath = tmp_path / "cmyk.jpg"
    cmyk.save(cpath, quality=100)
    assert Image.open(cpath).mode == "CMYK"
    r, g, b = load_image(cpath).getpixel((5, 4))
    assert r > 240 and g < 15 and b < 15


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=95)
    up = load_image(path)
    assert up.size == (20, 40)
    r, g, b = up.getpixel((10, 5))  # after the turn the red half is on top
    assert r > 200 and b < 60
    assert load_image(path, exif=False).size == (40, 20)
    assert tile_image(path).grid == (1, 2)  # the grid follows the upright shape, not the stored one


# ---------------------------------------------------------------- sizes


def test_one_pixel_image():
    result = tile_image(np.array([[[10, 20, 30]]], np.uint8))
    assert result.grid == (1, 1) and not result.thumbnail
    assert tuple(result.pixel_values.shape) == (1, 3, 448, 448)
    _flat(result, (10, 20, 30))


@pytest.mark.parametrize("w,h,grid", [(20000, 200, (12, 1)), (200, 20000, (1, 12))])
def test_extreme_aspect_ratio(w, h, grid):
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 1] = 90
    result = tile_image(arr)
    assert result.grid == grid and result.thumbnail
    assert tuple(result.pixel_values.shape) == (13, 3, 448, 448)
    _flat(result, (0, 90, 0))


# ---------------------------------------------------------------- errors


def test_decompression_bomb_is_refused_naming_the_file(tmp_path):
    big = tmp_path / "bomb.png"
    Image.new("L", (3000, 3000)).save(big)
    with pytest.raises(ImageTooLargeError, match="bomb.png.*9000000 pixels"):
        load_image(big, max_pixels=1_000_000)
    assert load_image(big, max_pixels=None).size == (3000, 3000)
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header_only(40000, 40000))  # 1.6 G pixels, only a header on disk
    with pytest.raises(ImageTooLargeError, match="huge.png"):
        load_image(huge)
    with pytest.raises(ImageTooLargeError, match="too large"):
        tile_image(huge, max_pixels=None)  # PIL's own hard limit, still named
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image(_png_header_only(40000, 40000))


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(ImageLoadError, match="nowhere.jpg.*does not exist"):
        load_image(tmp_path / "nowhere.jpg")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        tile_image(bad)
    good = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "truncated.png"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageLoadError, match="truncated.png"):
        load_image(cut)


def test_tiling_never_imports_torchvision():
    code = (
        "import sys; sys.modules['torchvision'] = None\n"  # any import of torchvision now fails
        "import numpy as np\n"
        "from ivl3_plugin.tile import tile_image\n"
        "r = tile_image(np.zeros((100, 300, 3), np.uint8))\n"
        "print(r.grid, tuple(r.pixel_values.shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 1) (4, 3, 448, 448)"
