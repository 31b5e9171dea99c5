"""Which frames to keep.

``segment`` is InternVL's rule (its README's ``get_index``, also ms-swift's
``load_video_internvl``): split [start, end] into ``num_segments`` equal
segments at the video's fps and take the frame at each segment's centre.
``fps`` keeps one frame per 1/fps seconds of the clip (capped at ``num_frames``).
Short videos repeat frames instead of failing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import numpy as np

from .layout import DEFAULT_NUM_FRAMES

Bound = Optional[Tuple[float, float]]


class SamplingError(ValueError):
    """The clip asked for lies outside the video (a bad row, not a crash)."""


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; part of the cache key, so any change re-decodes."""

    mode: str = "segment"  # "segment" | "fps"
    num_frames: int = DEFAULT_NUM_FRAMES
    fps: float = 1.0  # only for mode="fps"

    def __post_init__(self):
        if self.mode not in ("segment", "fps"):
            raise ValueError(f"sampling mode must be 'segment' or 'fps', not {self.mode!r}")
        if self.num_frames < 1:
            raise ValueError("num_frames must be >= 1")
        if self.mode == "fps" and not self.fps > 0:
            raise ValueError("fps must be > 0")

    def key(self) -> dict:
        return asdict(self)


def segment_centre_indices(num_frames_in_video: int, fps: float, num_segments: int, bound: Bound = None) -> List[int]:
    """InternVL's segment-centre rule; ``bound`` is (start, end) in seconds."""
    if num_frames_in_video < 1:
        raise SamplingError("video has no frames")
    max_frame = num_frames_in_video - 1
    start, end = bound if bound else (-100000.0, 100000.0)
    start_idx = max(0, round(start * fps))
    end_idx = min(round(end * fps) if math.isfinite(end) else max_frame, max_frame)
    if start_idx > max_frame:
        raise SamplingError(f"clip starts at {start:g}s, after the video ends ({num_frames_in_video / fps:.3f}s)")
    if end_idx < start_idx:
        raise SamplingError(f"clip end {end:g}s is before its start {start:g}s")
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]


def fixed_fps_indices(num_frames_in_video: int, fps: float, target_fps: float, max_frames: int,
                      bound: Bound = None) -> List[int]:
    """One frame per 1/target_fps seconds (at each interval's centre), at most ``max_frames``.

    When the clip would give more than ``max_frames`` frames, the segment rule picks
    ``max_frames`` of them evenly instead, so long videos stay within budget.
    """
    if num_frames_in_video < 1:
        raise SamplingError("video has no frames")
    duration = num_frames_in_video / fps
    start, end = bound if bound else (0.0, duration)
    start, end = max(0.0, start), min(end, duration)
    if start >= duration:
        raise SamplingError(f"clip starts at {start:g}s, after the video ends ({duration:.3f}s)")
    if end <= start:
        raise SamplingError(f"clip end {end:g}s is not after its start {start:g}s")
    count = max(1, int(math.floor((end - start) * target_fps + 1e-9)))
    if count > max_frames:
        return segment_centre_indices(num_frames_in_video, fps, max_frames, (start, end))
    times = [start + (k + 0.5) / target_fps for k in range(count)]
    return [min(num_frames_in_video - 1, int(t * fps)) for t in times]


def frame_indices(sampling: Sampling, num_frames_in_video: int, fps: float, bound: Bound = None) -> List[int]:
    if sampling.mode == "fps":
        return fixed_fps_indices(num_frames_in_video, fps, sampling.fps, sampling.num_frames, bound)
    return segment_centre_indices(num_frames_in_video, fps, sampling.num_frames, bound)
