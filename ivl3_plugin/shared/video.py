"""The one synthetic-video writer (PyAV bundles FFmpeg: no system ffmpeg needed).

The bundled demo videos and the tests' fixture videos are made with it; written to a
temporary file and renamed into place, so a killed generator never leaves a half-written mp4.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

PathLike = Union[str, os.PathLike]


def write_mp4(path: PathLike, frames, fps: int = 8, crf: int = 18, preset: Optional[str] = None,
              rotation: int = 0, pts: Optional[Sequence[int]] = None, time_base: Optional[Fraction] = None,
              faststart: bool = False, codec_options: Optional[Dict[str, str]] = None) -> Path:
    """Encode ``frames`` (uint8 ``[n, h, w, 3]`` RGB) as H.264 in an mp4 at ``path``.

    ``pts`` (in ``time_base`` units) makes a variable-frame-rate file; ``rotation`` sets the
    display-matrix rotation; extra ``codec_options`` go to libx264 (e.g. ``{"bf": "0"}``).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    options = {"movflags": "faststart"} if faststart else {}
    try:
        with av.open(str(tmp), "w", options=options) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            opts = {"crf": str(crf)}
            if preset:
                opts["preset"] = preset
            stream.options = {**opts, **(codec_options or {})}
            if rotation:
                stream.set_display_rotation(rotation)
            if time_base is not None:
                stream.codec_context.time_base = time_base
            for k, arr in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                if pts is not None:
                    frame.pts = pts[k]
                    frame.time_base = time_base
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
