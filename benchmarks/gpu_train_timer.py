"""The ``ivl3_bench_timer`` trainer callback of ``gpu_train.py``: GPU-synchronised time of each optimizer step,
samples / real tokens / padded slots fed, losses, peak memory, and optionally one step under torch.profiler.

ms-swift loads this file with ``--external_plugins`` (``gpu_train_runs.swift_argv`` passes its path), so it
imports only the standard library at the top: torch and swift are imported inside ``register``, in the
trainer's process.  Imported elsewhere (the benchmark's parent, for ``CALLBACK``) it registers nothing.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

CALLBACK = "ivl3_bench_timer"


def register() -> None:
    """Imported by swift via ``--external_plugins``: time each optimizer step, count samples/tokens."""
    import torch
    from swift.callbacks import callbacks_map
    from swift.callbacks.base import TrainerCallback

    class BenchTimer(TrainerCallback):
        def __init__(self, args, trainer):
            super().__init__(args, trainer)
            self.marks, self.samples, self.tokens, self.slots = [], [0], [0], [0]
            self.batch_rows = []  # (samples, real tokens, slots) of each micro-batch fed
            self.pending = []  # this step's micro-batch counts, GPU scalars read once it has ended
            original = trainer.training_step

            def counted(model, inputs, *a, **k):
                # measured on the collated batch the model gets: slots = every position of input_ids
                # (padding included), tokens = the real ones (attention mask; no mask = packed, no padding).
                # Counted on the GPU and read in on_step_end, after the step's synchronise: an int() here made
                # the host wait for the GPU at every micro-batch: an idle gap per micro-batch in
                # the profile that the run without the benchmark does not have
                ids = inputs["input_ids"]
                mask = inputs.get("attention_mask")
                n = ids.shape[0] if mask is not None or "position_ids" not in inputs \
                    else (inputs["position_ids"] == 0).sum()
                real = mask.sum() if mask is not None else ids.numel()
                self.pending.append((n, real, ids.numel()))
                return original(model, inputs, *a, **k)

            trainer.training_step = counted

        def _sync(self):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            self.marks = [self._sync()]
            self.losses, self.prof = [], None
            self.profile_at = int(os.environ.get("IVL3_BENCH_PROFILE_STEP", "0") or 0)
            self.profile_stacks = os.environ.get("IVL3_BENCH_PROFILE_STACKS") == "1"

        def on_step_begin(self, args, state, control, **kw):
            step = state.global_step + 1
            if self.profile_at and (step == self.profile_at or (self.profile_stacks and step == self.profile_at + 1)):
                from torch.profiler import ProfilerActivity, profile

                self._sync()
                # the second profiled step records Python stacks: they name the line behind each idle gap,
                # but their overhead slows the host, so the first step's plain profile gives the sizes
                self.prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                                    with_stack=step != self.profile_at)
                self.prof.__enter__()
                self.prof_t0 = time.perf_counter()

        def _settle(self):
            """This step's counts, read now that the GPU has finished it."""
            for row in self.pending:
                n, real, slots = (int(x) for x in row)
                self.samples[-1] += n
                self.tokens[-1] += real
                self.slots[-1] += slots
                self.batch_rows.append((n, real, slots))
            self.pending = []

        def on_step_end(self, args, state, control, **kw):
            self.marks.append(self._sync())
            self._settle()
            self.samples.append(0)
            self.tokens.append(0)
            self.slots.append(0)
            if self.prof is not None:
                self.prof.__exit__(None, None, None)
                summary = kernel_breakdown(self.prof, self.marks[-1] - self.prof_t0)
                key = "profile_summary" if state.global_step == self.profile_at else "profile_stacks_summary"
                setattr(self, key, summary)
                self.prof = None

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

        def on_train_end(self, args, state, control, **kw):
            out = os.environ.get("IVL3_BENCH_OUT")
            if not out:
                return
            cuda = torch.cuda.is_available()
            Path(out).write_text(json.dumps({
                "step_ends": self.marks, "samples": self.samples[:-1], "tokens": self.tokens[:-1],
                "slots": self.slots[:-1], "batches": self.batch_rows,
                "losses": self.losses, "profile": getattr(self, "profile_summary", None),
                "profile_stacks": getattr(self, "profile_stacks_summary", None),
                "profiled_step": self.profile_at or None,
                "peak_alloc_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
                "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2 ** 30 if cuda else None,
            }))

    callbacks_map[CALLBACK] = BenchTimer


KERNEL_KINDS = [  # (kind, substrings of CUDA kernel names), first match wins
    # cuDNN first: its SDPA kernels are named cudnn_generated_…_sdpa_sm90_flash_…, and were counted as flash
    ("attention: cuDNN", ("cudnn", "fmha_", "sdpa")), ("attention: flash", ("flash",)),
    ("attention: efficient", ("efficient", "fmha", "mem_eff", "cutlass::Kernel<Attention", "attention_kernel")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "sm90_", "ampere_", "cublas", "splitk", "triton_tem")),
    ("compiled element-wise (Triton)", ("triton_",)), ("copy / cast", ("copy", "Memcpy", "Memset", "cast")),
    ("dropout / RNG", ("dropout", "philox", "fused_dropout", "rand")), ("reduce / norm", ("reduce", "norm", "softmax")),
    ("element-wise (eager)", ("elementwise", "vectorized", "unrolled")),
]


def kernel_breakdown(prof, wall_s: float) -> dict:
    """GPU time of one profiled step by kernel kind, the 25 longest kernels, the GPU's idle share, and where
    the idle time goes (``gpu_idle.idle_report``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_idle import from_profile, idle_report

    kinds, top = {}, {}
    total = 0.0
    for ev in prof.events():
        if str(getattr(ev, "device_type", "")).split(".")[-1] != "CUDA":
            continue
        us = float(ev.time_range.elapsed_us())
        name = ev.name
        low = name.lower()
        kind = next((k for k, keys in KERNEL_KINDS if any(x.lower() in low for x in keys)), "other")
        kinds[kind] = kinds.get(kind, 0.0) + us
        top[name] = top.get(name, 0.0) + us
        total += us
    longest = sorted(top.items(), key=lambda kv: -kv[1])[:25]
    return {"wall_ms": wall_s * 1e3, "kernel_ms": total / 1e3, "idle_share": max(0.0, 1 - total / 1e6 / wall_s),
            "kinds_ms": {k: v / 1e3 for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top_kernels_ms": [(n[:140], v / 1e3) for n, v in longest],
            "idle": idle_report(*from_profile(prof))}


if "swift" in sys.modules:  # loaded inside ms-swift's process (--external_plugins, dataloader-worker replay)
    try:
        register()
    except ImportError:
        pass
