#!/usr/bin/env python3
"""MFU of recorded GPU runs, recounted with ``gpu_train_runs.flops_per_token`` as it is now.

Why: until 2026-12-06 the benchmark counted LoRA's attention as forward + one backward pass (x2) where the
backward needs two (dQ, dK, dV still flow to every earlier layer's adapters), so LoRA's MFU read 3-4 % low.
The runs' tokens/s are in their JSON; this prints each side's recorded MFU beside the recount, no GPU needed:

    python3 benchmarks/mfu_recount.py benchmarks/results/gpu_train_h100_8b_lora_plan*.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_train_runs import flops_per_token, mfu  # noqa: E402


def recount(path: str) -> list:
    """``(file, config, side, samples/s, recorded MFU, recounted MFU)`` for every side with an MFU."""
    data = json.loads(Path(path).read_text())
    out = []
    for row in data["rows"]:
        for side, res in row.items():
            if not isinstance(res, dict) or not res.get("mfu") or not res.get("tokens_per_s"):
                continue
            per_sample = res.get("tokens_per_sample") or res["tokens_per_s"] / res["samples_per_s"]
            flops = flops_per_token(row["arch"], row["tuner"], per_sample, data.get("frames") or 16)
            out.append((Path(path).name, row["config"], side, res["samples_per_s"], res["mfu"],
                        mfu(res["tokens_per_s"], flops, data["peak_tflops"])))
    return out


def main(argv=None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__.strip().splitlines()[-1].strip())
        return 2
    print(f"{'file':<46}{'config':<9}{'side':<7}{'samples/s':>10}{'MFU then':>9}{'MFU now':>8}")
    for name, config, side, sps, then, now in (r for p in paths for r in recount(p)):
        print(f"{name[:45]:<46}{config:<9}{side:<7}{sps:>10.2f}{100 * then:>8.1f}%{100 * now:>7.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
