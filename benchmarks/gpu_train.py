"""Training throughput: our ``ivl3_video`` template on converted frames vs ms-swift's native template on raw videos.

One run, side by side: for each config (InternVL3-1B LoRA, 1B full, 8B LoRA; random init at the
real sizes, frozen ViT, 16-frame videos of 448x448) it trains

* ``native``: ms-swift's own template (``internvl_hf``) reading the raw mp4s, with ms-swift's
  InternVL3 example settings (micro-batch 1, gradient accumulation, 4 dataloader workers);
* ``ours``: ``--template ivl3_video`` on the same videos converted to frames by ``ivl3 convert``,
  with our recipe defaults (larger micro-batch, more dataloader workers, same global batch, and on
  cuda the ``ivl3_compile`` callback: each repeated layer compiled; ``--ours-compile off`` drops it),
* ``ours1``: ours at micro-batch 1 (the same memory as native);
* ``plan``: ours with what ``ivl3 plan`` chooses for this GPU (its memory read from torch.cuda):
  micro-batch, accumulation and gradient checkpointing on all, none or the first k LLM layers
  (``ivl3_recompute``), applied by the same function as ``ivl3 train --plan``;
  ``plan80``: the plan for an 80 GiB GPU (skipped when it is the same setting as ``plan``);
  ``planx``: ``plan`` plus ``--planx-extra`` swift arguments / ``--planx-callback-args`` (an A/B of one change),
* ``group`` / ``plang``: ``ours`` / ``plan`` with the ``ivl3_length_group`` callback (micro-batches of similar
  length: with ``--mixed LO-HI`` data, clips of LO..HI frames, it removes most of the padding),

each as its own ``python -m swift.cli.main sft`` process for a fixed number of optimizer steps,
and prints samples/s, tokens/s, MFU and peak GPU memory with ours/native ratios, and beside each the
planner's predicted peak memory and samples/s; JSON to ``--out``.  ``--torch-profile SIDE`` runs one more
step of that side under torch.profiler (not timed) and prints where the GPU's time goes by kernel kind.
Timing comes from a trainer callback (``gpu_train_timer.py``, passed to swift as an external plugin)
that synchronises the GPU at every optimizer step; the first ``--warmup`` steps are not counted.
This file is the command line and the tables; the model and clips are ``gpu_train_data``, one swift run and
its summary ``gpu_train_runs``, the sides and the planner's view of them ``gpu_train_sides``.

GPU (one H200, ~6-8 min):  python3 benchmarks/gpu_train.py --out $OUT/gpu_train.json
CPU proof at toy size:     python benchmarks/gpu_train.py --device cpu --tiny --out /tmp/gpu_train.json
Mixed-length data (``--mixed LO-HI``: clips of LO..HI frames, summaries of 1-8 sentences; each side's padding
fraction is counted on the collated batches):
  GPU:  python3 benchmarks/gpu_train.py --configs 8b-lora --mixed 8-32 --sides native,plan,plang  (planner_gpu.sh mixed)
  CPU:  python benchmarks/gpu_train.py --device cpu --tiny --mixed 8-32 --ours-batch 4 --global-batch 8 --steps 3 \
            --sides native,ours,group
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from gpu_train_data import ARCHS, CONFIGS, QWEN_VOCAB, VIT_300M, build_model, make_data, write_video
from gpu_train_runs import H200_BF16_TFLOPS, REPO, TIMER_PLUGIN, flops_per_token, run_one, summarise, swift_argv
from gpu_train_sides import (GROUP, PLAN_LABEL_TOKENS, PLAN_TEXT_TOKENS, SIDES, Side, gpu_memory_gib, plan_request,
                             plan_side, planner_arch, predict_side)
from gpu_train_timer import CALLBACK, KERNEL_KINDS, kernel_breakdown

__all__ = [  # other benchmarks use these as gpu_train.X (mpo_gpu.py, remote_vs_hf.py, compile_zero_check.sh)
    "ARCHS", "CALLBACK", "CONFIGS", "GROUP", "H200_BF16_TFLOPS", "KERNEL_KINDS", "PLAN_LABEL_TOKENS",
    "PLAN_TEXT_TOKENS", "QWEN_VOCAB", "REPO", "SIDES", "TIMER_PLUGIN", "VIT_300M", "Side", "build_model",
    "flops_per_token", "gpu_memory_gib", "kernel_breakdown", "main", "make_data", "plan_request", "plan_side",
    "planner_arch", "predict_side", "print_profile", "print_table", "run_one", "side_steps", "summarise",
    "swift_argv", "write_video"]


def side_steps(steps: int, side: str, sides: list, torch_profile, stacks: bool) -> tuple:
    """``(profile_step, untimed)`` of one side: the step ``side`` profiles (0: none) and how many steps after
    the ``steps`` timed ones every side runs.  Every side runs them, profiled or not: ``--max_steps`` sets the
    length of the learning-rate schedule, so sides run for different step counts follow different loss curves
    (the "two tracks" of docs/benchmarks.md)."""
    untimed = (2 if stacks else 1) if torch_profile in sides else 0
    return (steps + 1 if torch_profile == side else 0), untimed


def print_profile(name: str, prof: dict) -> None:
    print(f"[{name}] profiled step: {prof['wall_ms']:.0f} ms wall, {prof['kernel_ms']:.0f} ms of kernels "
          f"(GPU idle {100 * prof['idle_share']:.0f}%)")
    for kind, ms in prof["kinds_ms"].items():
        print(f"    {kind:34} {ms:9.1f} ms  {100 * ms / max(prof['kernel_ms'], 1e-9):5.1f}%")
    for kname, ms in prof["top_kernels_ms"][:12]:
        print(f"    {ms:9.1f} ms  {kname[:110]}")
    print_idle(name, prof)


def print_idle(name: str, prof: dict, label: str = "") -> None:
    """The idle time by gap size and the long gaps by cause (``gpu_idle.idle_report``)."""
    idle = prof.get("idle")
    if not idle:
        return
    print(f"[{name}] GPU idle{label}: {idle['idle_ms']:.1f} ms between kernels "
          f"(step {prof['wall_ms']:.0f} ms wall, {prof['kernel_ms']:.0f} ms of kernels)")
    for size, row in idle["by_gap_size"].items():
        print(f"    {size:26} {row['gaps']:7d} gaps {row['ms']:9.1f} ms")
    for row in idle["long_gaps_by_cause"]:
        print(f"    {row['ms']:9.1f} ms in {row['gaps']:4d} gaps  {row['cause'][:150]}")
    for row in idle.get("syncs_by_site", []):
        print(f"    {row['calls']:5d} syncs  {row['site'][:150]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy model and clips (CPU proof)")
    ap.add_argument("--configs", default=None, help="comma list of " + ",".join(CONFIGS))
    ap.add_argument("--work", default=None, help="working folder (default: a temp dir under /tmp)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--mixed", default=None, metavar="LO-HI",
                    help="mixed-length data: clips of LO..HI frames (e.g. 8-32; --tiny: 2-8) and summaries of "
                         "1-8 sentences, seeded; the results add each side's padding fraction")
    ap.add_argument("--frame-format", choices=["jpeg", "png"], default="jpeg",
                    help="how ivl3 convert stores our sides' frames: jpeg (its default) or png (lossless: "
                         "native's decoded pixels, for comparing the sides' losses)")
    ap.add_argument("--videos", type=int, default=None, help="distinct clips (default 2x the samples trained)")
    ap.add_argument("--global-batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=None,
                    help="leading steps not timed (default 2 with compiled layers: the compile, 1 without)")
    ap.add_argument("--ours-batch", type=int, default=None, help="override our micro-batch for every config")
    ap.add_argument("--ours-workers", type=int, default=None, help="dataloader workers (cuda 8, cpu 1)")
    ap.add_argument("--native-workers", type=int, default=None,
                    help="cuda 4, as ms-swift's InternVL3 example (cpu 1)")
    ap.add_argument("--peak-tflops", type=float, default=None, help=f"MFU denominator (cuda: {H200_BF16_TFLOPS})")
    ap.add_argument("--sides", default="native,ours",
                    help="native, ours (our micro-batch), ours1 (ours at micro-batch 1: the same-memory point), "
                         "group (ours + ivl3_length_group: micro-batches of similar length), plang (plan + it), "
                         "plan (what ivl3 plan chooses for this GPU), plan80 (for an 80 GiB GPU), planx (plan + "
                         "--planx-extra / --planx-callback-args)")
    ap.add_argument("--plan-gpu-memory", type=float, default=None,
                    help="GiB the plan side plans for (default: this GPU's, from torch.cuda; cpu: 80)")
    ap.add_argument("--plan-callback-args", default="{}",
                    help="JSON object merged into every plan side's IVL3_CALLBACK_ARGS")
    ap.add_argument("--ours-callback-args", default="{}",
                    help="JSON object: IVL3_CALLBACK_ARGS of ours / ours1 / group (recorded with each side)")
    ap.add_argument("--planx-extra", default="[]", help="JSON list of extra swift arguments for the planx side")
    ap.add_argument("--planx-callback-args", default="{}",
                    help="JSON object merged into the planx side's IVL3_CALLBACK_ARGS, e.g. "
                         "'{\"ivl3_compile\": {\"attention\": \"cudnn\"}}'")
    ap.add_argument("--torch-profile", default=None, help="side (e.g. plan): profile one extra, untimed step")
    ap.add_argument("--profile-stacks", action="store_true",
                    help="with --torch-profile: one more untimed step with Python stacks, naming the host line "
                         "behind each long GPU idle gap")
    ap.add_argument("--timeout", type=int, default=600, help="per run, seconds")
    ap.add_argument("--ours-extra", default="[]", help="JSON list of extra swift arguments for our sides")
    ap.add_argument("--native-extra", default="[]", help="JSON list of extra swift arguments for native")
    ap.add_argument("--ours-compile", default=None, choices=["on", "off"],
                    help="our recipes' ivl3_compile callback on our sides (default: on for cuda, off for cpu)")
    ap.add_argument("--ours-checkpointing", default=None, choices=["on", "off"],
                    help="gradient checkpointing of ours / ours1 / group (default: the recipe's, on)")
    ap.add_argument("--profile", default=None, help="folder: record each run's Python stacks with py-spy")
    args = ap.parse_args(argv)

    tiny = args.tiny
    configs = (args.configs or ("tiny-lora" if tiny else "1b-lora,1b-full,8b-lora")).split(",")
    frames = args.frames or (4 if tiny else 16)
    mixed = None
    if args.mixed:
        from mixed_data import parse_range

        try:
            mixed = parse_range(args.mixed)
        except ValueError as exc:
            ap.error(str(exc))
    gb = args.global_batch or (2 if tiny else 8)
    steps = args.steps or (3 if tiny else 6)
    peak = args.peak_tflops if args.peak_tflops is not None else (H200_BF16_TFLOPS if args.device == "cuda" else 0)
    cuda = args.device == "cuda"
    sides = args.sides.split(",")
    if any(x not in SIDES for x in sides):
        ap.error(f"--sides: a comma list of {', '.join(SIDES)} (ratios need native)")
    planx_extra, planx_cb = json.loads(args.planx_extra), json.loads(args.planx_callback_args)
    plan_cb, ours_cb = json.loads(args.plan_callback_args), json.loads(args.ours_callback_args)
    if not all(isinstance(cb, dict) for cb in (planx_cb, plan_cb, ours_cb)):
        ap.error("--plan-callback-args / --planx-callback-args / --ours-callback-args: a JSON object")
    ours_compile = (args.ours_compile or ("on" if cuda else "off")) == "on"
    if args.warmup is None:
        args.warmup = 2 if ours_compile else 1
    ours_workers = args.ours_workers if args.ours_workers is not None else (8 if cuda else 1)
    native_workers = args.native_workers if args.native_workers is not None else (4 if cuda else 1)
    work = Path(args.work or f"/tmp/ivl3-gpu-train{'-tiny' if tiny else ''}")
    work.mkdir(parents=True, exist_ok=True)
    n_videos = args.videos or max(8, 2 * gb * steps)
    sys.path.insert(0, str(REPO))
    extra = {False: json.loads(args.native_extra), True: json.loads(args.ours_extra)}
    if not all(isinstance(x, list) and all(isinstance(y, str) for y in x) for x in extra.values()):
        ap.error("--ours-extra / --native-extra: a JSON list of strings")

    t0 = time.perf_counter()
    if mixed and args.frame_format != "jpeg":
        ap.error("--frame-format: the mixed-length data is converted as JPEG only")
    data = make_data(work / "data", n_videos, frames, 448 if not tiny else 96, mixed, args.frame_format)
    max_length, plan_frames = 8192, frames
    if mixed:  # the planner and the FLOP count take the mean clip; max_length holds the longest whole
        frames, plan_frames = max(1, round(data["frames_mean"])), data["frames_max"]
        max_length = max(8192, -(-(mixed[1] * 256 + 1024) // 1024) * 1024)
        print(f"data: {n_videos} clips of {data['frames_min']}-{data['frames_max']} frames (mean "
              f"{data['frames_mean']:.1f}), summaries of {data['summary_chars_mean']:.0f} characters on average; "
              f"max_length {max_length}; ready in {time.perf_counter() - t0:.1f}s", flush=True)
    else:
        print(f"data: {n_videos} clips x {frames} frames ready in {time.perf_counter() - t0:.1f}s", flush=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.pathsep.join(
                   [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        import av  # noqa: F401
    except ImportError:  # ms-swift's -hf video path defaults to PyAV; OpenCV or decord read the same files
        try:
            import cv2  # noqa: F401
            env.setdefault("VIDEO_LOAD_BACKEND", "opencv")
        except ImportError:
            env.setdefault("VIDEO_LOAD_BACKEND", "decord")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""

    rows = []
    for cfg in configs:
        arch, tuner, micro = CONFIGS[cfg]
        arch = "tiny" if tiny else arch
        t1 = time.perf_counter()
        model = build_model(arch, work / f"model-{arch}", args.device)
        print(f"[{cfg}] model {model} ready in {time.perf_counter() - t1:.1f}s", flush=True)
        ours_micro = args.ours_batch or micro
        ours_layers = 0 if args.ours_checkpointing == "off" else None  # None: every layer, the recipe's
        pair = {}
        plan_arch = planner_arch(arch, model)
        gpu_gib = args.plan_gpu_memory or (gpu_memory_gib() if cuda else 80.0)
        setups = {"native": Side(data["native"], 1, max(1, gb), native_workers, False, True, [], {}, None),
                  "ours": Side(data["ours"], ours_micro, max(1, gb // ours_micro), ours_workers, ours_compile, True,
                               [], ours_cb, ours_layers),
                  "ours1": Side(data["ours"], 1, gb, ours_workers, ours_compile, True, [], ours_cb, ours_layers),
                  "group": Side(data["ours"], ours_micro, max(1, gb // ours_micro), ours_workers, ours_compile, True,
                                [GROUP], ours_cb, ours_layers)}
        for side, memory in (("plan", gpu_gib), ("plan80", 80.0), ("planx", gpu_gib), ("plang", gpu_gib)):
            if side in sides:  # mixed data: planned for the longest clip, the batch that must fit
                setups[side] = plan_side(plan_arch, tuner, plan_frames, gb, memory, data["ours"], ours_workers,
                                         max_length)
        if "plang" in setups:
            setups["plang"] = replace(setups["plang"], callbacks=setups["plang"].callbacks + [GROUP])
        if "plan80" in setups and "plan" in setups and setups["plan80"].same_as(setups["plan"]):
            print(f"[{cfg}/plan80] the plan for 80 GiB is the plan for this GPU ({gpu_gib:.1f} GiB): not run again")
            setups.pop("plan80")
        for side in ("plan", "plan80", "planx", "plang"):
            if side in setups and plan_cb:
                setups[side] = setups[side].with_extra([], plan_cb)
        if "planx" in setups:
            setups["planx"] = setups["planx"].with_extra(planx_extra, planx_cb)
        for side in ("plan", "plan80", "planx", "plang"):  # compiled where the plan says, unless compile is off here
            if side in setups:
                setups[side] = replace(setups[side], compiled=setups[side].compiled and ours_compile)
        for side in [x for x in sides if x in setups]:
            st = setups[side]
            name = f"{cfg}/{side}"
            run_dir = work / "runs" / cfg / side
            shutil.rmtree(run_dir, ignore_errors=True)
            ours = side != "native"
            profile_step, untimed = side_steps(steps, side, sides, args.torch_profile, args.profile_stacks)
            argv_ = swift_argv(model, st.rows, tuner, st.micro, gb, steps + untimed, run_dir, ours,
                               args.device, st.workers, compile_layers=st.compiled, accum=st.accum,
                               checkpointing=None if st.layers is None else st.layers > 0,
                               callbacks=st.callbacks, max_length=max_length) + extra[ours] + st.extra
            run_env = dict(env, **({"IVL3_CALLBACK_ARGS": json.dumps(st.callback_args)} if st.callback_args else {}),
                           **({"IVL3_BENCH_PROFILE_STEP": str(profile_step)} if profile_step else {}),
                           **({"IVL3_BENCH_PROFILE_STACKS": "1"} if profile_step and untimed == 2 else {}))
            res = run_one(name, argv_, run_dir, run_env, args.timeout, Path(args.profile) if args.profile else None)
            res["extra_args"] = extra[ours] + st.extra
            res["compiled"] = st.compiled
            res.update(micro_batch=st.micro, grad_accum=st.accum, workers=st.workers, callbacks=st.callbacks,
                       callback_args=st.callback_args, checkpoint_layers=st.layers)
            res["predicted"] = predict_side(plan_arch, tuner, plan_frames, st, gb, max_length)
            if not res.get("failed"):
                if untimed:  # the profiled steps are not timed
                    for key in ("step_ends", "samples", "tokens", "slots"):
                        if res.get(key):
                            res[key] = res[key][:-untimed]
                tps = sum(res["tokens"]) / max(1, sum(res["samples"]))
                res = summarise(res, args.warmup, flops_per_token(arch, tuner, tps, frames), peak)
            pair[side] = res
            print(f"[{name}] " + (f"{res['samples_per_s']:.2f} samples/s, {res['s_per_step']:.2f} s/step, "
                                  f"peak {res['peak_alloc_gib'] or 0:.1f} GiB, wall {res['wall_s']:.0f}s"
                                  if not res.get("failed") else "failed"), flush=True)
            if res.get("profile"):
                print_profile(name, res["profile"])
            if res.get("profile_stacks"):
                print_idle(name, res["profile_stacks"], " (step profiled with Python stacks: slower host)")
            if args.out:  # partial results survive a run cut short by a time limit
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"partial": True, "rows": rows + [
                    {"config": cfg, "arch": arch, "tuner": tuner, **pair}]}, indent=1))
        rows.append({"config": cfg, "arch": arch, "tuner": tuner, **pair})
        if args.out:  # partial results survive a run cut short by a time limit
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"partial": True, "rows": rows}, indent=1))
    print_table(rows, [x for x in sides if any(x in r for r in rows)])
    result = {"device": args.device, "tiny": tiny, "mixed": args.mixed, "frame_format": args.frame_format, "video_load_backend": env.get("VIDEO_LOAD_BACKEND", "pyav"), "frames": frames, "global_batch": gb, "steps": steps,
              "warmup": args.warmup, "peak_tflops": peak, "total_wall_s": time.perf_counter() - t0, "rows": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        logs = Path(args.out).parent / "gpu_train_logs"  # each run's swift output, for reading failures
        logs.mkdir(exist_ok=True)
        for log in (work / "runs").glob("*/*/log.txt"):
            (logs / f"{log.parent.parent.name}_{log.parent.name}.txt").write_text(log.read_text()[-200000:])
        print(f"wrote {args.out}")
    return 0 if all(not r[s].get("failed") for r in rows for s in sides if s in r) else 1


def print_table(rows: list, sides: list) -> None:
    """Measured beside predicted (the planner's memory and samples/s for the setting each side ran)."""
    head = f"{'config':<10}{'side':<8}{'mb x ga':>8}{'ckpt':>7}{'samples/s':>10}{'tokens/s':>9}{'s/step':>7}{'MFU':>7}" \
           f"{'peak GiB':>9}{'planned':>8}{'meas/plan':>10}{'pred s/s':>9}{'padding':>8}"
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        present = [x for x in sides if x in r]
        for side in present:
            x = r[side]
            if x.get("failed"):
                print(f"{r['config']:<10}{side:<8}  FAILED (rc {x.get('rc')})")
                continue
            pred = x.get("predicted") or {}
            mfu = f"{100 * x['mfu']:.1f}%" if x.get("mfu") else "-"
            peak = x.get("peak_alloc_gib")
            ratio = f"{peak / pred['peak_gib']:.2f}" if peak is not None and pred.get("peak_gib") else "-"
            ckpt = f"{pred.get('checkpoint_layers', '?')}/{pred.get('layers', '?')}"
            print(f"{r['config']:<10}{side:<8}{str(x['micro_batch']) + 'x' + str(x['grad_accum']):>8}{ckpt:>7}"
                  f"{x['samples_per_s']:>10.2f}{x['tokens_per_s']:>9.0f}{x['s_per_step']:>7.2f}{mfu:>7}"
                  f"{'-' if peak is None else format(peak, '.1f'):>9}{pred.get('peak_gib', 0):>8.1f}{ratio:>10}"
                  f"{pred.get('samples_per_s', 0):>9.2f}{100 * x.get('padding_fraction', 0):>7.1f}%")
        n = r.get("native")
        for side in [x for x in present if x != "native" and n is not None]:
            o = r[side]
            if n.get("failed") or o.get("failed"):
                continue
            mem = (f"{o['peak_alloc_gib'] / n['peak_alloc_gib']:.2f}x" if n.get("peak_alloc_gib") else "-")
            label = f"{side}/nat"
            print(f"{r['config']:<10}{label:<8}{'':>15}{o['samples_per_s'] / n['samples_per_s']:>9.2f}x"
                  f"{o['tokens_per_s'] / n['tokens_per_s']:>8.2f}x{'':>14}{mem:>9}")
            r.setdefault("ratios", {})[side] = {
                "samples_per_s": o["samples_per_s"] / n["samples_per_s"],
                "peak_alloc": (o["peak_alloc_gib"] / n["peak_alloc_gib"]) if n.get("peak_alloc_gib") else None}


if __name__ == "__main__":
    sys.exit(main())
else:  # loaded by ms-swift through --external_plugins (mpo_gpu.py passes this file): register the timing callback
    from gpu_train_timer import register

    try:
        register()
    except ImportError:
        pass
