"""The four bundled films both hosts' vision tests train on: they differ in colour, shape and direction,
so a model that reads its frames tells them apart and one that ignores them cannot."""
from __future__ import annotations

import json
from pathlib import Path

PICK = ("red_circle_rightward_1", "green_square_leftward_1", "blue_triangle_falling_1", "yellow_circle_rising_1")


def write_pick_annotations(demo_annotations: Path, out: Path) -> Path:
    """The annotation rows of :data:`PICK` at ``out``, video paths absolute, all in the train split."""
    rows = {json.loads(l)["id"]: json.loads(l) for l in demo_annotations.read_text().splitlines() if l.strip()}
    out.write_text("".join(json.dumps({**rows[i], "video": str(demo_annotations.parent / rows[i]["video"]),
                                       "split": "train"}) + "\n" for i in PICK))
    return out
