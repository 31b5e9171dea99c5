"""Regenerate the bundled demo videos (deterministic; PyAV bundles FFmpeg).

Each video shows one coloured shape moving in one direction over a plain background; its
reference summary says exactly that, so only a model that watches the frames can get it right.
Every colour x shape x direction combination (48) is filmed ``INSTANCES`` times, each film with its
own path and offset; the nine held-out (``split: val``) films are one more film of nine combinations,
chosen so every colour, shape and direction is among them. Their sentence is in the training set, but
which of the 48 sentences is right can only be read from the frames (``UNSEEN = True`` holds the
combinations out entirely: a harder test than the demo's CPU budget passes, see docs/demo.md).
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

import numpy as np

from . import ANNOTATIONS, VIDEO_DIR
from .attributes import COLOURS, MOTIONS, SHAPES, summary_of

SIZE = 96
FRAMES = 24
FPS = 8
RADIUS = 0.26  # of the frame side
INSTANCES = 3  # films of each training combination
UNSEEN = False  # True: held-out combinations have no training film at all
# the held-out combinations: each colour, shape and direction appears, none is seen in training
HELD_OUT = (("red", "circle", "rightward"), ("red", "triangle", "rising"), ("green", "square", "leftward"),
            ("green", "circle", "falling"), ("blue", "triangle", "leftward"), ("blue", "square", "rising"),
            ("yellow", "circle", "rising"), ("yellow", "triangle", "rightward"), ("green", "triangle", "falling"))
AXES = {"rightward": ((0, 1), (1, 0)), "leftward": ((0, -1), (1, 0)),   # (direction of travel, perpendicular)
        "falling": ((1, 0), (0, 1)), "rising": ((-1, 0), (0, 1))}     # in (row, column) units


def _mask(shape: str, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":
        return (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
    # a triangle pointing up, as wide as it is tall
    return (yy <= cy + r) & (yy >= cy - r) & (abs(xx - cx) <= (yy - (cy - r)) * 0.5)


def render(colour: str, shape: str, motion: str, rng: random.Random, frames: int = FRAMES) -> np.ndarray:
    """One film: the shape crosses most of the frame along its direction, off-centre by a random amount.

    Its size is fixed, so the shapes also differ in area (square 4r², circle 3.1r², triangle 2r²).
    """
    (dy, dx), (py, px) = AXES[motion]
    r = SIZE * RADIUS
    span = rng.uniform(0.50, 0.60) * SIZE / 2
    off = rng.uniform(-0.12, 0.12) * SIZE
    c0 = SIZE / 2 + rng.uniform(-0.04, 0.04) * SIZE
    out = np.empty((frames, SIZE, SIZE, 3), np.uint8)
    for t in range(frames):
        a = -1 + 2 * t / (frames - 1)
        cy, cx = c0 + dy * span * a + py * off, c0 + dx * span * a + px * off
        img = np.full((SIZE, SIZE, 3), 245, np.uint8)
        img[_mask(shape, cy, cx, r)] = COLOURS[colour]
        out[t] = img
    return out


def rows(instances: int = INSTANCES, held_out=HELD_OUT, seed: int = 0, unseen: bool = UNSEEN):
    """(id, colour, shape, motion, split, rng) for every film, in a fixed order."""
    rng = random.Random(seed)
    for colour, shape, motion in itertools.product(COLOURS, SHAPES, MOTIONS):
        val = (colour, shape, motion) in held_out
        for k in range(0 if val and unseen else instances):
            yield f"{colour}_{shape}_{motion}_{k + 1}", colour, shape, motion, "train", random.Random(rng.random())
        if val:
            yield f"{colour}_{shape}_{motion}", colour, shape, motion, "val", random.Random(rng.random())


def main(argv=None) -> None:
    from ..shared.atomic import write_text_atomic
    from ..shared.video import write_mp4

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=VIDEO_DIR)
    ap.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    ap.add_argument("--instances", type=int, default=INSTANCES)
    args = ap.parse_args(argv)
    for old in args.out.glob("*.mp4"):
        old.unlink()
    lines = []
    for vid, colour, shape, motion, split, rng in rows(args.instances):
        write_mp4(args.out / f"{vid}.mp4", render(colour, shape, motion, rng), fps=FPS, preset="medium")
        lines.append(json.dumps({"id": vid, "video": f"videos/{vid}.mp4", "summary": summary_of(colour, shape, motion),
                                 "split": split}))
    write_text_atomic(args.annotations, "\n".join(lines) + "\n")
    print(f"wrote {len(lines)} videos to {args.out}")


if __name__ == "__main__":
    main()
