"""Run work items in worker processes, one video per task, surviving a decoder that crashes a worker.

A native decoder can kill its process on a corrupt file; the pool then
breaks.  We restart it, rerun each item that was running alone in a fresh
process, and report the one that crashes again as skipped.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from .cache import FrameCache, ImageOptions, StaleEntry, entry_key, export_entry, file_digest
from .decode import DecodeError, decode, load_image_frames
from .planning import Item
from ..shared.sampling import Sampling, SamplingError


@dataclass(frozen=True)
class WorkConfig:
    sampling: Sampling
    image: ImageOptions
    cache_dir: str
    frames_dir: str  # <out>/frames: where each dataset's own copies of the frames live
    decoder: str = "auto"


def process_item(item: Item, cfg: WorkConfig) -> dict:
    """Decode (or fetch from the cache) one item; returns a manifest record, never raises for bad input."""
    base = {"id": item.id, "signature": item.signature}
    started = time.perf_counter()
    try:
        if item.video:
            digest = file_digest(item.video)
        else:
            digest = "+".join(file_digest(p) for p in item.frames)
        sampling_key = dict(cfg.sampling.key(), frames_fps=item.row.frames_fps if item.frames else None)
        key = entry_key(digest, sampling_key, item.clip, cfg.image)
        cache = FrameCache(cfg.cache_dir)
        meta = cache.get(key)
        dest, repaired, decoded = None, None, None
        if meta is not None:
            try:
                dest = export_entry(cache, key, meta, Path(cfg.frames_dir))  # copies, checked against checksums
            except StaleEntry as exc:
                repaired = str(exc) if exc.report else None
        hit = dest is not None
        for attempt in range(3):
            if dest is not None:
                break
            if decoded is None:
                if item.video:
                    decoded = decode(item.video, cfg.sampling, item.clip, cfg.decoder)
                else:
                    decoded = load_image_frames(item.frames, cfg.sampling, item.row.frames_fps, item.clip)
            meta = cache.put(key, decoded, cfg.image, replace=meta is not None)
            try:
                dest = export_entry(cache, key, meta, Path(cfg.frames_dir))
            except StaleEntry:
                if attempt == 2:  # another process keeps swapping this entry: say so rather than loop
                    raise
                meta = cache.get(key)  # it was replaced while we copied: take it again (or rewrite it)
    except (DecodeError, SamplingError) as exc:
        return dict(base, status="skipped", reason=str(exc))
    except OSError as exc:
        return dict(base, status="skipped", reason=f"cannot read: {exc.strerror or exc}")
    except Exception as exc:  # one odd file must not stop the run; the reason says what happened
        return dict(base, status="skipped", reason=f"unexpected {type(exc).__name__}: {str(exc)[:200]}")
    extra = {"cache_repaired": repaired} if repaired else {}
    return dict(base, status="ok", key=key, cache_hit=hit, **extra, frames=[str(dest / n) for n in meta["frames"]],
                timestamps=meta["timestamps"], indices=meta["indices"], fps=meta["fps"],
                num_video_frames=meta["num_video_frames"], decoder=meta["decoder"],
                seconds=round(time.perf_counter() - started, 4))


def _context():
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def run_items(items: List[Item], cfg: WorkConfig, workers: int, on_result: Callable[[Item, dict], None],
              progress: bool = False) -> None:
    """Process ``items``; ``workers`` 0 runs in this process (no isolation), N>0 uses N processes."""
    bar = _bar(len(items), progress)
    try:
        if workers <= 0:
            for item in items:
                on_result(item, process_item(item, cfg))
                bar.update(1)
            return
        todo = list(items)
        while todo:
            todo, suspects = _one_pool(todo, cfg, workers, on_result, bar)
            for item in suspects:  # alone in a fresh process: a crash now is this item's own
                left, again = _one_pool([item], cfg, 1, on_result, bar)
                if again:
                    on_result(item, {"id": item.id, "signature": item.signature, "status": "skipped",
                                     "reason": "the decoder crashed its worker process"})
                    bar.update(1)
    finally:
        bar.close()


def _one_pool(todo: List[Item], cfg, workers, on_result, bar) -> Tuple[List[Item], List[Item]]:
    """Run until done or the pool breaks; returns (items not started, items running at a crash).

    At most ``workers`` tasks are submitted at a time, so the ones running when a
    worker dies are known exactly.
    """
    queue = list(reversed(todo))
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        running: Dict = {}
        while queue or running:
            while queue and len(running) < workers:
                try:  # a worker can die between wait() and here: the pool then refuses new work
                    running[pool.submit(process_item, queue[-1], cfg)] = queue[-1]
                except BrokenProcessPool:
                    return list(reversed(queue)), list(running.values())
                queue.pop()
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                on_result(running.pop(fut), result)
                bar.update(1)
            if broken:
                return list(reversed(queue)), list(running.values())
    return [], []


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end with the converter (kill -9, OOM killer, preemption).

    A forked worker holds both ends of the pool's pipes, so it never sees EOF when the
    parent dies and would wait forever; on Linux the kernel kills it instead.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="video", disable=not enabled or total == 0, file=sys.stderr,
                dynamic_ncols=True, desc="convert")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
