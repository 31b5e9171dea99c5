"""Which frames to keep: InternVL's segment-centre rule (its README's ``get_index``)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np


def segment_centre_indices(num_frames_in_video: int, fps: float, num_segments: int,
                           bound: Optional[Tuple[float, float]] = None) -> List[int]:
    """Split [start, end] into ``num_segments`` equal segments and take each centre frame.

    Short videos repeat frames rather than fail, as InternVL does.
    """
    if num_frames_in_video < 1:
        raise ValueError("video has no frames")
    max_frame = num_frames_in_video - 1
    if bound:
        start, end = bound[0], bound[1]
    else:
        start, end = -100000.0, 100000.0
    start_idx = max(0, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]
