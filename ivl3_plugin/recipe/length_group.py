"""Length-grouped micro-batches: which samples train together, so a batch pads (almost) nothing.

Why: a micro-batch is padded to its longest sample.  Video-summary data mixes clips of 8-32 frames
(256 tokens each), so a random batch of 4 can be half padding: compute and memory spent on nothing.
Grouping samples of similar length into the same micro-batch removes most of it without changing
what is learnt: every sample is still seen exactly once per epoch, each sample's loss is the same
(padding is masked), only which samples share a micro-batch changes.

How (host-free; the host adapter supplies the lengths and wires the batches into its trainer):

1. shuffle all samples (seeded by ``seed`` and ``epoch``: another order every epoch, the same on every rank);
2. cut the shuffled list into windows of ``window`` global micro-steps (``batch_size x world_size x window``
   samples) and sort each window by length, longest first;
3. cut each sorted window into global micro-steps of ``batch_size x world_size`` samples and shuffle the
   micro-steps (so long and short batches alternate over the epoch instead of running long-first);
4. rank ``r`` takes every ``world_size``-th sample of each micro-step, so the ranks get equal work.

The window keeps the batches random from epoch to epoch (a global sort would pair the same samples every
epoch) while leaving only the length spread inside a window's neighbours as padding.  With more than one
rank, the ``len % world_size`` samples left over after the shuffle are dropped, as an unsorted sharded
sampler does.
"""
from __future__ import annotations

import random
from typing import List, Sequence

DEFAULT_WINDOW = 64
LENGTH_GROUP_CALLBACK = "ivl3_length_group"  # the trainer callback that applies it (hosts/swift/length_group.py)
LENGTH_GROUP_FIELDS = ("window",)  # its run settings (CALLBACK_ARGS): global micro-steps sorted together


def grouped_micro_steps(lengths: Sequence[int], batch_size: int, *, seed: int = 0, epoch: int = 0,
                        world_size: int = 1, window: int = DEFAULT_WINDOW, drop_last: bool = False) -> List[List[int]]:
    """Global micro-steps (each ``batch_size x world_size`` sample indices of similar length) in training order."""
    if batch_size < 1 or world_size < 1 or window < 1:
        raise ValueError(f"batch_size, world_size and window must be >= 1 (got {batch_size}, {world_size}, {window})")
    rng = random.Random(f"ivl3-length-group/{seed}/{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if world_size > 1:
        order = order[:len(order) - len(order) % world_size]
    step = batch_size * world_size
    steps: List[List[int]] = []
    for start in range(0, len(order), step * window):
        part = sorted(order[start:start + step * window], key=lambda i: -lengths[i])  # stable: ties stay shuffled
        chunk = [part[j:j + step] for j in range(0, len(part), step)]
        if drop_last and chunk and len(chunk[-1]) < step:
            chunk.pop()
        rng.shuffle(chunk)
        steps.extend(chunk)
    return steps


def rank_batches(steps: List[List[int]], rank: int = 0, world_size: int = 1) -> List[List[int]]:
    """This rank's micro-batches: every ``world_size``-th sample of each global micro-step (equal shares)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return [s[rank::world_size] for s in steps]


def padding_fraction(lengths: Sequence[int], batches: List[List[int]]) -> float:
    """Padded positions / all positions when each batch is padded to its longest sample."""
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return 1 - real / slots if slots else 0.0
