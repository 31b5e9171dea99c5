"""Decode the sampled frames of one video: decord batch reads, PyAV where decord is missing or fails.

Both paths return upright RGB frames: rotated videos go to PyAV, where we
apply ``VideoFrame.rotation`` ourselves (decord 0.6 mishandles 90/270 degrees,
returning wrong shapes or failing in ``get_batch``), and each frame's
presentation time in seconds, so variable-frame-rate videos keep true times.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..shared.sampling import Bound, Sampling, SamplingError, frame_indices


class DecodeError(RuntimeError):
    """The video cannot be turned into frames; the message is the skip reason."""


@dataclass
class Decoded:
    frames: List[np.ndarray]  # H x W x 3 uint8, one per sampled index (repeats allowed)
    indices: List[int]
    timestamps: List[float]
    fps: float
    num_video_frames: int
    decoder: str


def decode(path: str, sampling: Sampling, bound: Bound = None, decoder: str = "auto") -> Decoded:
    """Sample and decode; ``decoder`` is "auto" (decord, then PyAV), "decord" or "pyav"."""
    if not os.path.exists(path):
        raise DecodeError("file not found")
    if os.path.getsize(path) == 0:
        raise DecodeError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise DecodeError("file is not readable (permission denied)")
    errors = []
    order = ["decord", "pyav"] if decoder == "auto" else [decoder]
    if decoder == "auto" and _rotation(path):
        order = ["pyav"]  # decord 0.6 mangles 90/270-degree display rotation (wrong shape or garbage)
    for name in order:
        try:
            return (_decode_decord if name == "decord" else _decode_pyav)(path, sampling, bound)
        except SamplingError:
            raise
        except DecodeError as exc:
            errors.append(f"{name}: {exc}")
        except ImportError as exc:
            errors.append(f"{name}: not installed ({exc})")
        except Exception as exc:  # decoders raise their own types; keep the first line
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    raise DecodeError("; ".join(errors))


def _rotation(path: str) -> int:
    """Display rotation in degrees from the first frame (0 when unknown or PyAV is missing)."""
    try:
        import av

        with av.open(path) as container:
            if not container.streams.video:
                return 0
            for frame in container.decode(container.streams.video[0]):
                return int(getattr(frame, "rotation", 0) or 0) % 360
    except Exception:
        return 0
    return 0


def _unique(indices: List[int]) -> List[int]:
    return sorted(set(indices))


def _decode_decord(path: str, sampling: Sampling, bound: Bound) -> Decoded:
    import decord

    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    n = len(vr)
    if n < 1:
        raise DecodeError("no video frames")
    fps = float(vr.get_avg_fps())
    if not fps > 0:
        raise DecodeError("video reports no frame rate")
    indices = frame_indices(sampling, n, fps, bound)
    wanted = _unique(indices)
    batch = vr.get_batch(wanted).asnumpy()  # one batched read, decord seeks between key frames
    stamps = vr.get_frame_timestamp(wanted)[:, 0]
    by_index = {i: (batch[k], float(stamps[k])) for k, i in enumerate(wanted)}
    return Decoded([by_index[i][0] for i in indices], indices, [by_index[i][1] for i in indices], fps, n, "decord")


def _decode_pyav(path: str, sampling: Sampling, bound: Bound) -> Decoded:
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise DecodeError("no video stream (audio-only or not a video)")
        stream = container.streams.video[0]
        declared = int(stream.frames or 0)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise DecodeError("video reports no frame rate")
        fps = float(rate)
        n = sum(1 for p in container.demux(stream) if p.size)  # count without decoding
    if n < 1:
        raise DecodeError("no video frames")
    if declared and n < declared:
        raise DecodeError(f"truncated: header declares {declared} frames, file holds {n}")
    indices = frame_indices(sampling, n, fps, bound)
    wanted = set(indices)
    last = max(indices)
    got = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        for k, frame in enumerate(container.decode(stream)):
            if k in wanted:
                arr = frame.to_ndarray(format="rgb24")
                turns = (int(getattr(frame, "rotation", 0) or 0) // 90) % 4
                got[k] = (np.ascontiguousarray(np.rot90(arr, turns)) if turns else arr,
                          float(frame.time) if frame.time is not None else k / fps)
            if k >= last:
                break
    missing = [i for i in indices if i not in got]
    if missing:
        raise DecodeError(f"decoding stopped before frame {missing[0]} of {n} (truncated or corrupt)")
    return Decoded([got[i][0] for i in indices], indices, [got[i][1] for i in indices], fps, n, "pyav")


def load_image_frames(paths: List[str], sampling: Sampling, fps: Optional[float], bound: Bound) -> Decoded:
    """A list of already-extracted images sampled like a video of ``fps`` (default 1) frames/s."""
    from PIL import Image

    fps = float(fps or 1.0)
    indices = frame_indices(sampling, len(paths), fps, bound)
    cache = {}
    for i in _unique(indices):
        p = paths[i]
        if not os.path.isfile(p):
            raise DecodeError(f"frame image not found: {p}")
        try:
            with Image.open(p) as im:
                cache[i] = np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise DecodeError(f"frame image unreadable: {p}: {type(exc).__name__}") from exc
    return Decoded([cache[i] for i in indices], indices, [i / fps for i in indices], fps, len(paths), "images")
