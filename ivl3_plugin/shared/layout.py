"""InternVL3's image layout, in one place: every stage that counts tokens or sizes tiles reads it here.

A tile is 448 x 448 pixels cut into 14 x 14 patches (32 x 32 = 1024 patches); pixel shuffle with
ratio 0.5 merges 2 x 2 patches, so the language model sees 16 x 16 = 256 ``<IMG_CONTEXT>`` tokens
per tile.  Frames per video default to 16: the middle of the official trainer's 8-32 range, and
what the recipes' memory plans assume.
"""
from __future__ import annotations

TILE_SIZE = 448
PATCH_SIZE = 14
DOWNSAMPLE_RATIO = 0.5
DEFAULT_NUM_FRAMES = 16
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tokens_per_tile(tile_size: int = TILE_SIZE, patch_size: int = PATCH_SIZE,
                    downsample_ratio: float = DOWNSAMPLE_RATIO) -> int:
    """``(tile_size / patch_size)^2 * downsample_ratio^2``: 256 for InternVL3."""
    return int((tile_size // patch_size) ** 2 * downsample_ratio ** 2)


TILE_TOKENS = tokens_per_tile()
