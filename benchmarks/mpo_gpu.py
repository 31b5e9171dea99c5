"""MPO (``swift rlhf``, DPO + MPO's losses) on one GPU: pairs/s and peak memory beside ``ivl3 plan --stage mpo``.

InternVL3-8B's architecture at random init (``gpu_train.build_model``), LoRA r8, frozen ViT, 16-frame clips
(``gpu_train.make_data``: the same synthetic videos, converted by ``ivl3 convert``) turned into preference pairs
(chosen = the clip's summary, rejected = the same sentence with the direction reversed), trained for a few
optimizer steps by the real ``python -m swift.cli.main rlhf`` with ``--template ivl3_video``.  The micro-batch is
what the planner picks for this GPU with every layer checkpointed (ms-swift's default); the planner's
predicted peak memory and samples/s for exactly that setting are printed beside the measurement, with the
ratio measured / predicted.  Timing: ``gpu_train.py``'s trainer callback (GPU synchronised at every optimizer
step, the first ``--warmup`` steps not counted); a "sample" is one pair (its chosen and rejected rows).

GPU (one H100/H200, about 4-6 min, wheels from .whl as for the other benchmarks):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl \\
      && PYTHONPATH=$PWD/.site:$PWD python3 benchmarks/mpo_gpu.py --out $OUT/mpo_gpu.json
CPU proof at toy size (what was run so far):
    PYTHONPATH=$PWD python benchmarks/mpo_gpu.py --device cpu --tiny --out /tmp/mpo_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_train as gt  # noqa: E402  (the model builder, the synthetic clips, the timer callback)

REPO = gt.REPO
MPO = ["--rlhf_type", "dpo", "--loss_type", "sigmoid", "bco_pair", "--loss_weights", "0.8", "0.2", "--rpo_alpha",
       "1.0", "--beta", "0.1"]


def make_pairs(converted: Path, out: Path) -> Path:
    """Converted rows as pairs: the reference summary chosen, the same sentence with the direction reversed rejected."""
    rows = [json.loads(line) for line in converted.read_text().splitlines() if line.strip()]
    pairs = []
    for r in rows:
        good = r["messages"][-1]["content"]
        bad = good.replace("left to right", "right to left")
        if bad == good:
            raise SystemExit(f"cannot make a rejected summary from {good!r}")
        pairs.append({"messages": r["messages"], "rejected_response": bad, "videos": r["videos"]})
    out.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return out


def planned(arch, frames: int, global_batch: int, gpu_gib: float, device: str):
    """The planner's micro-batch for this GPU (every layer checkpointed, no DeepSpeed) and its predictions."""
    from ivl3_plugin.recipe.memory import TrainSetup, estimate
    from ivl3_plugin.recipe.plan import PlanRequest, make_plan
    from ivl3_plugin.recipe.speed import step_time

    req = PlanRequest(model="benchmark", gpus_per_node=1, gpu_memory_gib=gpu_gib, frames=frames, max_length=8192,
                      tuner="lora", global_batch=global_batch, max_micro_batch=None, text_tokens=gt.PLAN_TEXT_TOKENS,
                      label_tokens=gt.PLAN_LABEL_TOKENS, lora_rank=8, checkpointing="all", objective="fastest",
                      stages=[(0, False)], stage="mpo")
    plan = make_plan(req, arch)
    micro = plan.micro_batch if plan.fits and device == "cuda" else 1
    accum = max(1, global_batch // micro)
    setup = TrainSetup(tuner="lora", micro_batch=micro, frames=frames, text_tokens=gt.PLAN_TEXT_TOKENS,
                       label_tokens=gt.PLAN_LABEL_TOKENS, max_length=8192, lora_rank=8, stage="mpo")
    mem = estimate(arch, setup)
    return micro, accum, {"peak_gib": mem.total / 2 ** 30, "samples_per_s": step_time(arch, setup, accum).samples_per_s,
                          "memory_gib": mem.gib(), "fits": plan.fits, "notes": plan.notes}


def rlhf_argv(model: Path, pairs: Path, micro: int, accum: int, steps: int, out: Path, device: str) -> list:
    return [sys.executable, "-m", "swift.cli.main", "rlhf", *MPO, "--model", str(model), "--dataset", str(pairs),
            "--template", "ivl3_video", "--split_dataset_ratio", "0", "--tuner_type", "lora", "--lora_rank", "8",
            "--lora_alpha", "32", "--target_modules", "all-linear", "--freeze_vit", "true", "--freeze_aligner", "true",
            "--torch_dtype", "bfloat16" if device == "cuda" else "float32", "--learning_rate", "1e-5",
            "--per_device_train_batch_size", str(micro), "--gradient_accumulation_steps", str(accum),
            "--max_steps", str(steps), "--logging_steps", "1", "--gradient_checkpointing", "true",
            "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none", "--max_length", "8192",
            "--attn_impl", "sdpa", "--output_dir", str(out), "--check_model", "false", "--seed", "42",
            "--external_plugins", str(Path(gt.__file__).resolve()),
            str(REPO / "ivl3_plugin" / "hosts" / "swift" / "external_plugin.py"), "--callbacks", gt.CALLBACK,
            "--dataset_num_proc", "1", "--dataloader_num_workers", "4" if device == "cuda" else "0"]


def logged_rows(out: Path) -> list:
    rows = []
    for log in sorted(out.rglob("logging.jsonl")):
        rows += [r for r in map(json.loads, log.read_text().splitlines()) if "rewards/margins" in r]
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy model and clips (CPU proof)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (16; tiny: 4)")
    ap.add_argument("--global-batch", type=int, default=None, help="pairs per optimizer step (4; tiny: 2)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (5; tiny: 3)")
    ap.add_argument("--warmup", type=int, default=1, help="leading steps not timed")
    ap.add_argument("--gpu-memory", type=float, default=None, help="GiB to plan for (default: this GPU's; cpu: 80)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--timeout", type=int, default=420, help="the swift run, seconds")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    cuda = args.device == "cuda"
    arch_name = "tiny" if args.tiny else "8b"
    frames = args.frames or (4 if args.tiny else 16)
    gb = args.global_batch or (2 if args.tiny else 4)
    steps = args.steps or (3 if args.tiny else 5)
    work = Path(args.work or f"/tmp/ivl3-mpo-gpu{'-tiny' if args.tiny else ''}")
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))

    t0 = time.perf_counter()
    data = gt.make_data(work / "data", max(4, gb * steps), frames, 96 if args.tiny else 448)
    pairs = make_pairs(data["ours"], work / "pairs.jsonl")
    model = gt.build_model(arch_name, work / f"model-{arch_name}", args.device)
    print(f"data and model ready in {time.perf_counter() - t0:.1f}s: {pairs}, {model}", flush=True)
    arch = gt.planner_arch(arch_name, model)
    gpu_gib = args.gpu_memory or (gt.gpu_memory_gib() if cuda else 80.0)
    micro, accum, predicted = planned(arch, frames, gb, gpu_gib, args.device)
    print(f"[plan --stage mpo, {gpu_gib:.1f} GiB] micro-batch {micro} x {accum}: predicted "
          f"{predicted['peak_gib']:.1f} GiB, {predicted['samples_per_s']:.2f} pairs/s", flush=True)

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.pathsep.join(
                   [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    out = work / "run"
    res = gt.run_one("mpo-lora", rlhf_argv(model, pairs, micro, accum, steps, out, args.device), out, env,
                     args.timeout)
    if res.get("failed"):
        return 1
    res = gt.summarise(res, args.warmup, 0.0, 0.0)
    pairs_per_s = res["samples_per_s"] / 2  # the timer counts batch rows: chosen + rejected per pair
    logged = logged_rows(out)
    result = {
        "config": f"{arch_name} LoRA r8 MPO, {frames} frames, micro-batch {micro} x {accum}",
        "device": args.device, "gpu_memory_gib": gpu_gib, "measured_steps": res["measured_steps"],
        "pairs_per_s": pairs_per_s, "peak_alloc_gib": res.get("peak_alloc_gib"),
        "predicted": predicted, "tokens_per_sequence": res["tokens_per_sample"],
        "ratio_pairs_per_s": pairs_per_s / predicted["samples_per_s"],
        "ratio_peak": (res["peak_alloc_gib"] / predicted["peak_gib"]) if res.get("peak_alloc_gib") else None,
        "loss": [r["loss"] for r in logged], "margins": [r["rewards/margins"] for r in logged],
        "wall_s": res["wall_s"],
    }
    peak = f"{result['peak_alloc_gib']:.2f} GiB" if result["peak_alloc_gib"] is not None else "n/a (cpu)"
    print(f"{result['config']}: {pairs_per_s:.3f} pairs/s (predicted {predicted['samples_per_s']:.3f}, ratio "
          f"{result['ratio_pairs_per_s']:.2f}); peak {peak} (predicted {predicted['peak_gib']:.2f} GiB"
          + (f", ratio {result['ratio_peak']:.2f})" if result["ratio_peak"] else ")"))
    print(f"loss {result['loss'][0]:.4f} -> {result['loss'][-1]:.4f}, margin {result['margins'][0]:.4f} -> "
          f"{result['margins'][-1]:.4f} over {len(logged)} logged steps; run took {res['wall_s']:.0f}s", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
