"""Token budget for one video sample: which frames, how many tiles each.

Plain and host-free: the host hands in an exact ``length_of(frame_indices, tile_cap)``
(it tokenises the real prompt), and this module only decides.  Rules:

* drop frames evenly first (segment centres of the kept count, first/last spread),
  down to ``min_frames``; then lower the tile cap per frame, down to 1;
* an image is never cut: only whole frames and whole tiles go;
* if even ``min_frames`` frames of one tile do not fit, raise :class:`BudgetError`
  (the host turns it into a loud error or a logged skip -- never a silent loss).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from .errors import BudgetError


def even_subset(n: int, k: int) -> List[int]:
    """``k`` of ``range(n)`` spread evenly: the centre of each of ``k`` equal segments."""
    if not 0 < k <= n:
        raise ValueError(f"cannot keep {k} of {n} frames")
    return [min(n - 1, int((j + 0.5) * n / k)) for j in range(k)]


@dataclass(frozen=True)
class BudgetPlan:
    frame_indices: List[int]     # indices into the sample's frames, in order
    tile_cap: int                # max tiles per frame actually used
    length: int                  # exact token count of the planned sample
    num_frames_in: int
    tile_cap_in: int

    @property
    def reduced(self) -> bool:
        return len(self.frame_indices) < self.num_frames_in or self.tile_cap < self.tile_cap_in

    def describe(self) -> str:
        return (f"frames {self.num_frames_in}->{len(self.frame_indices)}, "
                f"tiles/frame cap {self.tile_cap_in}->{self.tile_cap}, {self.length} tokens")


def plan_budget(num_frames: int, tile_cap: int, max_length: Optional[int],
                length_of: Callable[[Sequence[int], int], int], min_frames: int = 1,
                sample_id: str = "?") -> BudgetPlan:
    """The largest even frame subset (then the largest tile cap) whose length fits ``max_length``.

    ``length_of`` must be monotone: fewer frames or fewer tiles never make a sample longer.
    """
    if num_frames < 1:
        raise ValueError("a video sample needs at least one frame")
    min_frames = max(1, min(min_frames, num_frames))
    full = list(range(num_frames))
    length = length_of(full, tile_cap)
    if max_length is None or length <= max_length:
        return BudgetPlan(full, tile_cap, length, num_frames, tile_cap)

    def fits(k: int, cap: int) -> Optional[int]:
        n = length_of(even_subset(num_frames, k), cap)
        return n if n <= max_length else None

    # 1) frames: binary search the largest k in [min_frames, num_frames) that fits at full tiles.
    lo, hi, best = min_frames, num_frames - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        n = fits(mid, tile_cap)
        if n is not None:
            best, lo = (mid, n), mid + 1
        else:
            hi = mid - 1
    if best is not None:
        return BudgetPlan(even_subset(num_frames, best[0]), tile_cap, best[1], num_frames, tile_cap)
    # 2) tiles: at min_frames, the largest cap below the original that fits.
    for cap in range(tile_cap - 1, 0, -1):
        n = fits(min_frames, cap)
        if n is not None:
            return BudgetPlan(even_subset(num_frames, min_frames), cap, n, num_frames, tile_cap)
    minimum = length_of(even_subset(num_frames, min_frames), 1)
    raise BudgetError(
        f"sample {sample_id}: even {min_frames} frame(s) of 1 tile need {minimum} tokens > max_length "
        f"{max_length} (full sample: {length} tokens, {num_frames} frames x up to {tile_cap} tiles). "
        "Raise --max_length, shorten the answer, or lower min_frames.",
        sample_id=sample_id, needed=minimum, max_length=max_length)
