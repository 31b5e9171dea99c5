"""The user's checkpoint as published (remote code, eager attention) vs converted once to -hf (SDPA + compiled layers).

One run, side by side, our ``ivl3_video`` template both times, on the same 16-frame converted samples:

* ``remote``: InternVL3 in OpenGVLab's remote-code format (``InternVLChatModel``), as a user who trains the
  hub folder as is gets it: no flash-attn on the machine, so the swift host picks eager attention
  (``hosts/swift/remote_code.py``); the remote code is our own fixture's (``ivl3_plugin/tiny/remote_code``:
  eager attention written the way the official code computes it);
* ``hf``: the same weights converted by ``ivl3 checkpoint to-hf`` (this script calls ``to_remote`` on a
  random-init -hf model to make the remote folder, then trains both), with SDPA and the ``ivl3_compile``
  callback, as the recipes run.

Prints samples/s and peak GPU memory of each with the ratio; JSON to ``--out``.

GPU (one H200, ~8 min):   python3 benchmarks/remote_vs_hf.py --out $OUT/remote_vs_hf.json
CPU proof at toy size:    .venv/bin/python benchmarks/remote_vs_hf.py --device cpu --tiny
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_train as gt  # noqa: E402  (the shared model builder, data, runner and summaries)

REPO = gt.REPO


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy model and clips (CPU proof)")
    ap.add_argument("--arch", default="8b", choices=["1b", "8b"])
    ap.add_argument("--tuner", default="lora", choices=["lora", "full"])
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--global-batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--checkpointing", choices=["on", "off"], default="on", help="gradient checkpointing (recipe: on)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=int, default=420)
    args = ap.parse_args(argv)

    cuda = args.device == "cuda"
    arch = "tiny" if args.tiny else args.arch
    frames = 4 if args.tiny else 16
    gb = args.global_batch or (2 if args.tiny else 8)
    steps = args.steps or (3 if args.tiny else 6)
    work = Path(args.work or f"/tmp/ivl3-remote-vs-hf{'-tiny' if args.tiny else ''}")
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    t0 = time.perf_counter()
    data = gt.make_data(work / "data", max(8, 2 * gb * steps), frames, 96 if args.tiny else 448)
    hf = gt.build_model(arch, work / f"model-{arch}-hf", args.device)
    remote = work / f"model-{arch}-remote"
    if not (remote / "config.json").exists():
        from ivl3_plugin.checkpoint import to_remote

        to_remote(hf, remote, code_from=REPO / "ivl3_plugin" / "tiny" / "remote_code")
    print(f"models and data ready in {time.perf_counter() - t0:.0f}s", flush=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", HF_MODULES_CACHE=str(work / "hf-modules"),
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                         if p]))
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    extra = ["--gradient_checkpointing", "true" if args.checkpointing == "on" else "false"]
    sides = {"remote": (remote, False, ["--attn_impl", "eager"]), "hf": (hf, cuda, [])}
    results = {}
    for side, (model, compiled, more) in sides.items():
        run_dir = work / "runs" / side
        shutil.rmtree(run_dir, ignore_errors=True)
        argv_ = gt.swift_argv(model, data["ours"], args.tuner, args.micro_batch, gb, steps, run_dir, True,
                              args.device, 8 if cuda else 1, compile_layers=compiled) + extra + more
        if side == "remote":  # swift_argv asks for sdpa, which InternVLChatModel does not have
            i = argv_.index("--attn_impl")
            del argv_[i:i + 2]
        res = gt.run_one(side, argv_, run_dir, env, args.timeout)
        if not res.get("failed"):
            tps = sum(res["tokens"]) / max(1, sum(res["samples"]))
            res = gt.summarise(res, args.warmup, gt.flops_per_token(arch, args.tuner, tps, frames),
                               gt.H200_BF16_TFLOPS if cuda else 0)
        res.update(compiled=compiled, attention="eager" if side == "remote" else "sdpa")
        results[side] = res
        print(f"[{side}] " + (f"{res['samples_per_s']:.2f} samples/s, peak {res['peak_alloc_gib'] or 0:.1f} GiB"
                              if not res.get("failed") else "failed"), flush=True)
    r, h = results["remote"], results["hf"]
    print(f"\n{'side':8} {'attention':10} {'compiled':9} {'samples/s':>10} {'peak GiB':>9}")
    for side, res in results.items():
        if res.get("failed"):
            print(f"{side:8} failed (see {work / 'runs' / side / 'log.txt'})")
            continue
        print(f"{side:8} {res['attention']:10} {str(res['compiled']):9} {res['samples_per_s']:>10.2f} "
              f"{res['peak_alloc_gib'] or 0:>9.1f}")
    if not r.get("failed") and not h.get("failed"):
        print(f"hf / remote: {h['samples_per_s'] / r['samples_per_s']:.2f}x samples/s at "
              f"{(h['peak_alloc_gib'] or 0) / max(1e-9, r['peak_alloc_gib'] or 1e-9):.2f}x peak memory")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"arch": arch, "tuner": args.tuner, "frames": frames, "global_batch": gb,
                                              "steps": steps, "warmup": args.warmup, "sides": results}, indent=1))
        logs = Path(args.out).parent
        for side in results:
            log = work / "runs" / side / "log.txt"
            if log.exists():
                (logs / f"remote_vs_hf_{side}.txt").write_text(log.read_text()[-100000:])
    return 0 if not any(res.get("failed") for res in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
