"""Where a profiled step leaves the GPU idle, and which host line caused it.

The 8B LoRA plan step spends 9 % of its wall time with no kernel running. A step can lose that time in two
ways that need different fixes: a few long gaps after the host waited for the GPU (a ``.item()``, a boolean
index, a device-to-host copy: the queue drains, then the host has to refill it), or many tiny gaps while the
host launches kernels slower than the GPU runs them. ``idle_report`` tells the two apart by gap size and
names, for the long gaps, the synchronising call that preceded each one and the Python line that made it.

Pure functions over plain tuples, so the analysis is tested on the CPU (``tests/test_gpu_idle.py``);
``from_profile`` turns a ``torch.profiler`` run (``with_stack=True``) into those tuples.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# host calls that wait for the GPU (runtime calls, and the aten ops whose CUDA versions copy a result back)
SYNC_NAMES = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
              "aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::is_nonzero", "aten::tolist")
# one name per waiting call (aten::item's own _local_scalar_dense and a copy's memcpy are not counted twice)
COUNTED_SYNCS = ("aten::item", "aten::nonzero", "aten::is_nonzero", "cudaStreamSynchronize", "cudaDeviceSynchronize")
BUCKETS_US = ((0, 20, "< 20 us (launch-bound)"), (20, 200, "20-200 us"), (200, 2000, "0.2-2 ms"),
              (2000, float("inf"), "> 2 ms"))
SKIP_FRAMES = ("torch/", "<built-in", "contextlib.py", "functools.py", "_compile.py", "accelerate/",
               "gpu_train_timer.py")  # matched at the start of a frame's path (made relative to site-packages)


@dataclass
class HostOp:
    name: str
    start: float  # microseconds, the profiler's clock (the kernels' too)
    end: float
    stack: list = field(default_factory=list)  # Python frames, innermost first ("file(line): func")


def gaps(kernels: list) -> list:
    """Idle intervals between the kernels (``(start, end)`` in µs, any streams): the busy time merged first."""
    out, busy_end = [], None
    for start, end in sorted(kernels):
        if busy_end is not None and start > busy_end:
            out.append((busy_end, start))
        busy_end = end if busy_end is None else max(busy_end, end)
    return out


def call_site(stack: list, depth: int = 2) -> str:
    """The innermost frames outside torch and the benchmark's own wrapper: the function a user would change.
    The profiler names a frame by its function's first line (the current line for frames already running
    when it started)."""
    frames = [f.split("site-packages/")[-1] for f in stack]
    frames = [f for f in frames if not any(f.startswith(s) or "/" + s in f for s in SKIP_FRAMES)]
    return " < ".join(frames[:depth]) or "(no Python frame)"


class _HostIndex:
    """The host ops sorted once, so each gap's lookups are bisections: a step profiled with stacks can have a
    million ops, and scanning them all for each long gap took over 5 minutes of the GPU machine's time on a
    synthetic million ops and 500 long gaps (1.8 s with the index)."""

    def __init__(self, ops: list):
        self.syncs = sorted((o for o in ops if any(o.name.startswith(s) for s in SYNC_NAMES)), key=lambda o: o.end)
        self.sync_ends = [o.end for o in self.syncs]
        self.stacked = sorted((o for o in ops if o.stack), key=lambda o: o.start)
        self.starts = [o.start for o in self.stacked]

    def waiting_at(self, g0: float, g1: float, slack: float):
        """The sync op that was waiting when the GPU ran dry at ``g0``: started by then and returned within
        ``[g0 - slack, g1]`` (the outermost of nested ones: it ends last).  A sync-named op that only starts
        inside the gap did not cause it: on a CPU tensor (the batch's CPU copy) it does not wait at all."""
        lo = bisect.bisect_left(self.sync_ends, g0 - slack)
        for i in range(bisect.bisect_right(self.sync_ends, g1) - 1, lo - 1, -1):
            if self.syncs[i].start <= g0 + slack:
                return self.syncs[i]
        return None

    def innermost(self, t0: float, t1: float):
        """The op with a stack that spans ``[t0, t1]`` and started last (the innermost, ops being nested)."""
        for i in range(bisect.bisect_right(self.starts, t0) - 1, -1, -1):
            if self.stacked[i].end >= t1:
                return self.stacked[i]
        return None

    def site(self, op: HostOp) -> str:
        """``op``'s own stack, or that of the innermost op enclosing it (runtime calls have none)."""
        if op.stack:
            return call_site(op.stack)
        around = self.innermost(op.start, op.end)
        return call_site(around.stack) if around else "(no Python frame)"


def blame(gap: tuple, ops, slack_us: float = 50.0) -> str:
    """The cause of one idle gap: the synchronising call that was waiting as the GPU ran dry (``waiting_at``),
    or, failing that, the host line running at the gap's middle.
    ``ops``: the host ops, or their ``_HostIndex`` (``idle_report`` builds it once for all gaps)."""
    index = ops if isinstance(ops, _HostIndex) else _HostIndex(ops)
    g0, g1 = gap
    op = index.waiting_at(g0, g1, slack_us)
    if op is not None:
        return f"after {op.name}: {index.site(op)}"
    mid = (g0 + g1) / 2
    running = index.innermost(mid, mid)
    if running is None:
        return "host outside any profiled op (Python between ops)"
    return f"host busy: {call_site(running.stack)}"


def idle_report(kernels: list, ops: list, top: int = 12, min_gap_us: float = 200.0) -> dict:
    """Idle time by gap size, and the long gaps grouped by their cause (largest total first)."""
    index = _HostIndex(ops)
    buckets = {label: [0, 0.0] for _, _, label in BUCKETS_US}
    causes = {}
    for g0, g1 in gaps(kernels):
        us = g1 - g0
        label = next(lab for lo, hi, lab in BUCKETS_US if lo <= us < hi)
        buckets[label][0] += 1
        buckets[label][1] += us / 1e3
        if us >= min_gap_us:
            cause = blame((g0, g1), index)
            entry = causes.setdefault(cause, [0, 0.0])
            entry[0] += 1
            entry[1] += us / 1e3
    ranked = sorted(causes.items(), key=lambda kv: -kv[1][1])[:top]
    return {"idle_ms": sum(b[1] for b in buckets.values()),
            "by_gap_size": {k: {"gaps": n, "ms": ms} for k, (n, ms) in buckets.items()},
            "long_gaps_by_cause": [{"cause": c[:200], "gaps": n, "ms": ms} for c, (n, ms) in ranked],
            "syncs_by_site": sync_sites(ops, index)[:top]}


def sync_sites(ops: list, index: _HostIndex = None) -> list:
    """Every call in the step that makes the host wait for the GPU, counted by name and Python line (most
    frequent first).  Seen on the CPU too, where the same calls run but cost nothing."""
    index = index or _HostIndex(ops)
    counts = {}
    for op in ops:
        if op.name in COUNTED_SYNCS:
            key = f"{op.name}: {index.site(op)}"
            counts[key] = counts.get(key, 0) + 1
    return [{"site": k[:200], "calls": n} for k, n in sorted(counts.items(), key=lambda kv: -kv[1])]


AUTOGRAD_NODE = "autograd::engine::evaluate_function: "


def _frame(name: str):
    """The stack entry an event stands for, or None: a Python function event of a ``with_stack`` profile
    (named ``file.py(line): function``), or the autograd node running a backward op (``backward of
    IndexBackward0``): backward runs on the engine's thread with no Python frame, and the node's name is
    then the only trace of the forward op that caused it."""
    if name.startswith(AUTOGRAD_NODE):
        return "backward of " + name[len(AUTOGRAD_NODE):]
    return name if ".py(" in name and "): " in name else None


def from_profile(prof) -> tuple:
    """(kernel intervals, host ops) of a ``torch.profiler.profile`` run; each host op's stack is the chain of
    Python function events above it (empty without ``with_stack``)."""
    kernels, ops, stacks = [], [], {}

    def stack_of(ev) -> list:
        chain, node = [], ev
        while node is not None and id(node) not in stacks:
            chain.append(node)
            node = node.cpu_parent
        below = stacks[id(node)] if node is not None else []
        for n in reversed(chain):  # outermost first, so each level reuses its parent's stack
            frame = _frame(n.name)
            below = [frame] + below if frame else below
            stacks[id(n)] = below
        return stacks[id(ev)]

    for ev in prof.events():
        device = str(getattr(ev, "device_type", "")).split(".")[-1]
        start, end = float(ev.time_range.start), float(ev.time_range.end)
        if device == "CUDA":
            if not getattr(ev, "is_user_annotation", False):
                kernels.append((start, end))
        elif device == "CPU":
            ops.append(HostOp(ev.name, start, end, stack_of(ev)))
    return kernels, ops
