"""What a video entry in a sample means, and how its frames are labelled.

A converted row carries ``videos: [[frame.jpg, ...]]`` (frames already sampled by
the converter, read directly -- no decoding at train time).  A raw row may carry a
video file path instead; it is sampled with the converter's rule
(:func:`ivl3_plugin.convert.sampling.segment_centre_indices`) so a raw video and its
converted frames give the same frames.  A folder of images also works.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from .errors import TemplateInputError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@dataclass
class FrameSet:
    """The frames of one video: image sources (paths or decoded PIL images) and times in seconds."""

    frames: List[Any]
    timestamps: Optional[List[float]] = None
    source: str = ""


DEFAULT_LABEL = "Frame{i}: "
DEFAULT_TIMESTAMP_LABEL = "Frame{i} ({t:.1f}s): "


def frame_label(i: int, t: Optional[float] = None, fmt: str = DEFAULT_LABEL,
                timestamp_fmt: str = DEFAULT_TIMESTAMP_LABEL) -> str:
    """One layout for training and inference: ``Frame{i}: `` or ``Frame{i} ({t:.1f}s): `` (i from 1)."""
    return fmt.format(i=i) if t is None else timestamp_fmt.format(i=i, t=t)


def resolve_video(entry: Any, num_frames: int, timestamps: Optional[Sequence[float]] = None,
                  sample_id: str = "?") -> FrameSet:
    """Turn one ``videos`` entry into a :class:`FrameSet` (frames are not decoded for paths)."""
    if isinstance(entry, (list, tuple)):
        frames = list(entry)
        if not frames:
            raise TemplateInputError(f"sample {sample_id}: video entry is an empty frame list")
        for f in frames:
            if isinstance(f, (str, os.PathLike)) and not Path(f).is_file():
                raise TemplateInputError(f"sample {sample_id}: frame file not found: {f}")
        ts = _check_timestamps(timestamps, len(frames), sample_id)
        return FrameSet(frames, ts, source=str(Path(str(frames[0])).parent) if isinstance(frames[0], str) else "")
    if isinstance(entry, (str, os.PathLike)):
        path = Path(entry)
        if path.is_dir():
            frames = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not frames:
                raise TemplateInputError(f"sample {sample_id}: no image files in frame folder {path}")
            return FrameSet(frames, _check_timestamps(timestamps, len(frames), sample_id), source=str(path))
        if not path.is_file():
            raise TemplateInputError(f"sample {sample_id}: video file not found: {path}")
        return decode_video(path, num_frames, sample_id)
    raise TemplateInputError(f"sample {sample_id}: a video must be a file path or a list of frame paths, "
                             f"got {type(entry).__name__}")


def decode_video(path: Path, num_frames: int, sample_id: str = "?") -> FrameSet:
    """Sample ``num_frames`` segment-centre frames of a video file (the converter's rule)."""
    import decord
    from PIL import Image

    from ..shared.sampling import segment_centre_indices

    try:
        vr = decord.VideoReader(str(path), num_threads=1)
    except Exception as exc:  # decord raises its own DECORDError
        raise TemplateInputError(f"sample {sample_id}: cannot decode video {path}: {exc}") from exc
    fps = float(vr.get_avg_fps()) or 1.0
    idx = segment_centre_indices(len(vr), fps, num_frames)
    arrays = vr.get_batch(idx).asnumpy()
    return FrameSet([Image.fromarray(a) for a in arrays], [i / fps for i in idx], source=str(path))


def _check_timestamps(timestamps, n: int, sample_id: str) -> Optional[List[float]]:
    if timestamps is None:
        return None
    ts = [float(t) for t in timestamps]
    if len(ts) != n:
        raise TemplateInputError(f"sample {sample_id}: {len(ts)} timestamps for {n} frames")
    return ts
