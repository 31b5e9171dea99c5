"""Content-addressed frame cache: a video is decoded once per (bytes, sampling, image options).

The key hashes the video's *bytes*, not its path, so a renamed copy, a rerun,
or a second dataset that shares videos all hit the same entry.  An entry is a
folder of frame images plus ``meta.json``; it is built in a temporary folder
and renamed into place, so a killed process never leaves a half entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional

from .decode import Decoded

CACHE_VERSION = 1


@dataclass(frozen=True)
class ImageOptions:
    format: str = "jpeg"  # "jpeg" | "png"
    quality: int = 90
    max_short_side: Optional[int] = None
    # store every frame as frame_size x frame_size (bicubic): what InternVL feeds the model for a one-tile
    # frame, so training reads it without resizing (resize once here, not at every step)
    frame_size: Optional[int] = None

    def __post_init__(self):
        if self.format not in ("jpeg", "png"):
            raise ValueError(f"image format must be 'jpeg' or 'png', not {self.format!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError("JPEG quality must be in 1..100")
        if self.frame_size is not None and self.frame_size < 1:
            raise ValueError(f"frame_size must be a positive number of pixels, got {self.frame_size}")
        if self.frame_size and self.max_short_side:
            raise ValueError("frame_size and max_short_side exclude each other: give one of them")

    def key(self) -> dict:
        """The options that change the frames on disk (``frame_size`` only when set: older keys stay valid)."""
        d = asdict(self)
        if d["frame_size"] is None:
            del d["frame_size"]
        return d

    @property
    def suffix(self) -> str:
        return ".jpg" if self.format == "jpeg" else ".png"


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def entry_key(content_digest: str, sampling: dict, clip, image: ImageOptions) -> str:
    payload = {"v": CACHE_VERSION, "content": content_digest, "sampling": sampling,
               "clip": list(clip) if clip else None, "image": image.key()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def default_cache_dir() -> Path:
    home = Path(os.environ.get("IVL3_HOME", Path.home() / ".cache" / "ivl3"))
    return home / "cache" / "frames"


def _resize(arr, max_short_side: Optional[int], frame_size: Optional[int] = None):
    from PIL import Image

    im = Image.fromarray(arr)
    if frame_size:
        return im if im.size == (frame_size, frame_size) else im.resize((frame_size, frame_size), Image.BICUBIC)
    if max_short_side and min(im.size) > max_short_side:
        w, h = im.size
        scale = max_short_side / min(w, h)
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    return im


class FrameCache:
    def __init__(self, root: os.PathLike):
        self.root = Path(root)

    def dir_for(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Optional[dict]:
        meta = self.dir_for(key) / "meta.json"
        try:
            return json.loads(meta.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, decoded: Decoded, image: ImageOptions) -> dict:
        final = self.dir_for(key)
        tmp = self.root / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True, exist_ok=True)
        names: List[str] = []
        written = {}
        for index, arr in zip(decoded.indices, decoded.frames):
            if index not in written:
                name = f"f{index:07d}{image.suffix}"
                im = _resize(arr, image.max_short_side, image.frame_size)
                if image.format == "jpeg":
                    im.save(tmp / name, format="JPEG", quality=image.quality)
                else:
                    im.save(tmp / name, format="PNG")
                written[index] = (name, im.size)
            names.append(written[index][0])
        size = next(iter(written.values()))[1]
        meta = {"frames": names, "indices": decoded.indices, "timestamps": [round(t, 6) for t in decoded.timestamps],
                "fps": decoded.fps, "num_video_frames": decoded.num_video_frames, "decoder": decoded.decoder,
                "width": size[0], "height": size[1]}
        (tmp / "meta.json").write_text(json.dumps(meta))
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)  # atomic: the entry appears complete or not at all
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same key first
            existing = self.get(key)
            if existing is None:
                raise
            return existing
        return meta


def link_entry(cache: FrameCache, key: str, meta: dict, dest_root: Path) -> Path:
    """Make ``dest_root/<key>/`` hold the entry's frames: hard links (no copy), else copies."""
    dest = Path(dest_root) / key
    if (dest / "meta.json").is_file():
        return dest
    src = cache.dir_for(key)
    tmp = Path(dest_root) / f".tmp-{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True, exist_ok=True)
    for name in sorted(set(meta["frames"])) + ["meta.json"]:
        try:
            os.link(src / name, tmp / name)
        except OSError:
            shutil.copy2(src / name, tmp / name)
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dest / "meta.json").is_file():
            shutil.rmtree(dest, ignore_errors=True)  # a stale partial folder: replace it
            return link_entry(cache, key, meta, dest_root)
    return dest
