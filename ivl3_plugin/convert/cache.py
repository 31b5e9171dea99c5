"""Content-addressed frame cache: a video is decoded once per (bytes, sampling, image options).

The key hashes the video's *bytes*, not its path, so a renamed copy, a rerun,
or a second dataset that shares videos all hit the same entry.  An entry is a
folder of frame images plus ``meta.json``; it is built in a temporary folder
and renamed into place, so a killed process never leaves a half entry.

A dataset gets its own *copies* of an entry's frames (:func:`export_entry`): a reflink where the
filesystem has them (``FICLONE``: btrfs, XFS, bcachefs...; no extra space), else an in-kernel copy
(``copy_file_range``, then ``shutil.copyfile``).  Editing a dataset's frame in place therefore never
changes the cache.  ``meta.json`` records each frame file's SHA-256 when it is written; every
export hashes the copies it made, so an entry changed inside the cache (or by an older ivl3 that
hard-linked frames into datasets) is detected, decoded again and reported, never reused.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..settings import home

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
    return home() / "cache" / "frames"


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


class StaleEntry(Exception):
    """A cache entry whose files no longer match the checksums written with it (or that has none).

    ``report`` is False for an entry of an older ivl3 (no checksums): decoded again without a word.
    """

    def __init__(self, reason: str, report: bool = True):
        super().__init__(reason)
        self.report = report


class FrameCache:
    def __init__(self, root: os.PathLike):
        self.root = Path(root)

    def dir_for(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Optional[dict]:
        meta = self.dir_for(key) / "meta.json"
        try:
            out = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        return out if isinstance(out, dict) else None

    def put(self, key: str, decoded: Decoded, image: ImageOptions, replace: bool = False) -> dict:
        """Write the entry (``replace``: over an existing, stale one); returns its ``meta``."""
        final = self.dir_for(key)
        tmp = self.root / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True, exist_ok=True)
        names: List[str] = []
        written = {}
        digests: Dict[str, str] = {}
        for index, arr in zip(decoded.indices, decoded.frames):
            if index not in written:
                name = f"f{index:07d}{image.suffix}"
                im = _resize(arr, image.max_short_side, image.frame_size)
                buf = io.BytesIO()
                if image.format == "jpeg":
                    im.save(buf, format="JPEG", quality=image.quality)
                else:
                    im.save(buf, format="PNG")
                data = buf.getvalue()
                (tmp / name).write_bytes(data)
                digests[name] = hashlib.sha256(data).hexdigest()
                written[index] = (name, im.size)
            names.append(written[index][0])
        size = next(iter(written.values()))[1]
        meta = {"frames": names, "indices": decoded.indices, "timestamps": [round(t, 6) for t in decoded.timestamps],
                "fps": decoded.fps, "num_video_frames": decoded.num_video_frames, "decoder": decoded.decoder,
                "width": size[0], "height": size[1], "sha256": digests}
        (tmp / "meta.json").write_text(json.dumps(meta))
        final.parent.mkdir(parents=True, exist_ok=True)
        if replace:  # move the stale entry aside first (another process may be doing the same)
            trash = self.root / "tmp" / f"stale-{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            try:
                os.rename(final, trash)
            except OSError:
                pass
            else:
                shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, final)  # atomic: the entry appears complete or not at all
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same key first
            existing = self.get(key)
            if existing is None:
                raise
            return existing
        return meta


_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF, errno.EPERM}
_reflink_works: Dict[Tuple[int, int], bool] = {}  # (source device, target device) -> FICLONE works there
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def clone_file(src: Path, dst: Path) -> str:
    """Make ``dst`` a copy of ``src`` that shares nothing a write could change; returns how.

    ``reflink`` (copy-on-write clone: instant, no extra space) where the filesystem has them,
    else ``copy_file_range`` (an in-kernel copy), else ``copy`` (``shutil.copyfile``).
    """
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        devices = (os.fstat(fin.fileno()).st_dev, os.fstat(fout.fileno()).st_dev)
        if _reflink_works.get(devices, True):
            try:
                import fcntl

                fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
                _reflink_works[devices] = True
                return "reflink"
            except (ImportError, OSError) as exc:
                if isinstance(exc, ImportError) or exc.errno in _NO_REFLINK:
                    _reflink_works[devices] = False
        if hasattr(os, "copy_file_range"):
            try:
                size, done = os.fstat(fin.fileno()).st_size, 0
                while done < size:
                    n = os.copy_file_range(fin.fileno(), fout.fileno(), size - done)
                    if n <= 0:
                        break
                    done += n
                if done == size:
                    return "copy_file_range"
            except OSError:
                pass
    shutil.copyfile(src, dst)
    return "copy"


def export_entry(cache: FrameCache, key: str, meta: dict, dest_root: Path) -> Path:
    """Make ``dest_root/<key>/`` hold copies of the entry's frames, checked against the entry's checksums.

    Raises :class:`StaleEntry` (the dataset folder untouched) when a frame differs from what was
    written into the cache, is missing, or the entry has no checksums (written by an older ivl3).
    """
    dest = Path(dest_root) / key
    if (dest / "meta.json").is_file():
        return dest  # this dataset already holds its copy (a rerun)
    digests = meta.get("sha256")
    if not isinstance(digests, dict):
        raise StaleEntry("cache entry has no checksums (written by an older ivl3)", report=False)
    src = cache.dir_for(key)
    tmp = Path(dest_root) / f".tmp-{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for name in sorted(set(meta["frames"])):
            try:
                clone_file(src / name, tmp / name)
            except FileNotFoundError:
                raise StaleEntry(f"cache frame {name} is missing") from None
            if file_digest(str(tmp / name)) != digests.get(name):
                raise StaleEntry(f"cache frame {src / name} was modified after it was written")
        (tmp / "meta.json").write_text(json.dumps(meta))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dest / "meta.json").is_file():
            shutil.rmtree(dest, ignore_errors=True)  # a stale partial folder: replace it
            return export_entry(cache, key, meta, dest_root)
    return dest
