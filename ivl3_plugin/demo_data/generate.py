"""Regenerate the bundled demo videos (deterministic; needs PyAV, which bundles FFmpeg).

Each video shows one coloured shape moving in one direction over a plain background;
its reference summary says exactly that, so a model that watches the frames can learn it.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from . import ANNOTATIONS, VIDEO_DIR

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 70, 230), "yellow": (235, 210, 20)}
SHAPES = ("circle", "square", "triangle")
MOTIONS = {  # phrase -> (start, end) centre in relative coordinates, id suffix
    "moves from left to right": ((0.2, 0.5), (0.8, 0.5), "rightward"),
    "moves from right to left": ((0.8, 0.5), (0.2, 0.5), "leftward"),
    "falls from the top to the bottom": ((0.5, 0.2), (0.5, 0.8), "falling"),
    "rises from the bottom to the top": ((0.5, 0.8), (0.5, 0.2), "rising"),
}
SIZE = 96
FRAMES = 24
FPS = 8


def _mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":
        return (abs(xx - cx) <= r * 0.85) & (abs(yy - cy) <= r * 0.85)
    # triangle pointing up
    return (yy <= cy + r * 0.8) & (yy >= cy - r) & (abs(xx - cx) <= (yy - (cy - r)) * 0.6)


def render(colour: str, shape: str, motion: str, frames: int = FRAMES) -> np.ndarray:
    (x0, y0), (x1, y1), _ = MOTIONS[motion]
    out = np.empty((frames, SIZE, SIZE, 3), np.uint8)
    for t in range(frames):
        a = t / (frames - 1)
        img = np.full((SIZE, SIZE, 3), 245, np.uint8)
        m = _mask(shape, (x0 + (x1 - x0) * a) * SIZE, (y0 + (y1 - y0) * a) * SIZE, SIZE * 0.14)
        img[m] = COLOURS[colour]
        out[t] = img
    return out


def write_mp4(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "medium"}
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=VIDEO_DIR)
    ap.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    args = ap.parse_args(argv)
    rows = []
    for colour, shape, motion in itertools.product(COLOURS, SHAPES, MOTIONS):
        vid = f"{colour}_{shape}_{MOTIONS[motion][2]}"
        write_mp4(args.out / f"{vid}.mp4", render(colour, shape, motion))
        rows.append({"id": vid, "video": f"videos/{vid}.mp4", "summary": f"A {colour} {shape} {motion}."})
    with open(args.annotations, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} videos to {args.out}")


if __name__ == "__main__":
    main()
