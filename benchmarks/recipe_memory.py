#!/usr/bin/env python3
"""Measured peak GPU memory vs ``ivl3 plan``'s prediction, and multi-GPU scaling efficiency.

For InternVL3-1B/2B/8B *architectures* (random init at real size from a
transformers-native config: no download), LoRA and full fine-tuning, ZeRO 0
(one GPU, torch AdamW like ms-swift without ``--deepspeed``) and ZeRO 2/3
(DeepSpeed, several GPUs), it runs a few optimizer steps of a plain
torch/DeepSpeed loop that mirrors ms-swift 4.6's defaults (bf16 weights,
gradient checkpointing, frozen ViT, trainable projector for full FT, LoRA
rank 16 on all LLM linears, logits only for answer tokens), records
``torch.cuda.max_memory_allocated`` per rank and prints it beside
:func:`ivl3_plugin.recipe.memory.estimate` with the ratio.  A plain loop, not
``swift sft``: one process per GPU count runs every row, so all rows fit in a
few minutes, and memory is not blurred by data loading.

GPU:  python3 benchmarks/recipe_memory.py --gpus 4 --out /tmp/recipe_memory.json
CPU:  python3 benchmarks/recipe_memory.py --device cpu --tiny --out /tmp/rm.json  (code path only)
Goals: every row within +-20 % of the prediction; scaling efficiency >= 85 %.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivl3_plugin.recipe.arch import ARCHS, ModelArch, TextArch, VisionArch, arch_from_config, hf_config_dict  # noqa: E402
from ivl3_plugin.recipe.memory import GIB, TrainSetup, estimate  # noqa: E402

TINY = ModelArch("tiny", VisionArch(layers=2, hidden=64, heads=4, ffn=256),
                 TextArch(layers=2, hidden=64, heads=4, kv_heads=2, ffn=256, vocab=1024, tie_embeddings=True))
LLM_LINEARS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def row_key(r):
    ckpt = r.get("ckpt", "all")
    return f"{r['size']}-{r['tuner']}-z{r['zero']}-x{r['world']}" + ("" if ckpt == "all" else f"-ckpt{ckpt}")


def ckpt_layers(spec, layers: int) -> int:
    """'all', 'none', 'half' or a number -> how many of the LLM's first layers are checkpointed."""
    return {"all": layers, "none": 0, "half": layers // 2}.get(str(spec), None) if not str(spec).isdigit() \
        else min(int(spec), layers)


# ---------------------------------------------------------------------------------------------- worker
def build_model(model_dir, tuner, device, torch, zero_init_config=None, lora_rank=16, lora_dropout=0.05,
                checkpoint="all"):
    """Random-init model; with ``zero_init_config`` (a ZeRO-3 config) the weights are created already
    partitioned (``deepspeed.zero.Init``), for sizes whose bf16 weights one GPU cannot hold (78B)."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    cfg = InternVLConfig.from_pretrained(model_dir)
    cfg._attn_implementation = "sdpa"
    if zero_init_config is not None:
        from transformers.integrations import HfDeepSpeedConfig

        # transformers sees ZeRO-3 through this object (held by a weak reference): it builds the model
        # inside deepspeed.zero.Init and initialises each module's gathered weights, one module at a time
        ds_marker = HfDeepSpeedConfig(zero_init_config)
        model = InternVLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        model._ivl3_ds_marker = ds_marker
    else:
        with torch.device(device):
            model = InternVLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16,
                                                                  attn_implementation="sdpa")
    model.model.vision_tower.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(tuner == "full")
    k = ckpt_layers(checkpoint, cfg.text_config.num_hidden_layers)
    if tuner == "lora":
        from peft import LoraConfig, get_peft_model

        model.requires_grad_(False)
        if k:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=lora_rank, lora_alpha=32, lora_dropout=lora_dropout,
                                                  target_modules=LLM_LINEARS))
    elif k:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if 0 < k < cfg.text_config.num_hidden_layers:  # the ivl3_recompute callback's own function
        from ivl3_plugin.recipe.compile import checkpoint_first

        checkpoint_first(model, k)
    model.train()
    return model, cfg


def ds_config(stage, hidden, micro_batch, z3_reuse=int(1e9), grad_accum=1):
    """ms-swift's zero2.json / zero3.json with the "auto" values the HF integration fills in.

    ``z3_reuse`` overrides stage3_max_reuse_distance and stage3_max_live_parameters (ms-swift: 1e9),
    to check what the planner's gathered-parameters term stands for."""
    zero = {"stage": stage, "overlap_comm": False, "contiguous_gradients": True}
    if stage == 3:
        zero.update(reduce_bucket_size=hidden * hidden, stage3_prefetch_bucket_size=int(0.9 * hidden * hidden),
                    stage3_param_persistence_threshold=10 * hidden, stage3_max_live_parameters=int(z3_reuse),
                    stage3_max_reuse_distance=int(z3_reuse), sub_group_size=int(1e9))
    else:
        zero.update(allgather_partitions=True, allgather_bucket_size=int(2e8), reduce_scatter=True,
                    reduce_bucket_size=int(2e8))
    return {"bf16": {"enabled": True}, "zero_optimization": zero, "train_micro_batch_size_per_gpu": micro_batch,
            "gradient_accumulation_steps": grad_accum, "gradient_clipping": 1.0, "zero_allow_untested_optimizer": True,
            "steps_per_print": 10 ** 9, "wall_clock_breakdown": False}


def make_batch(cfg, a, device, torch):
    """One synthetic video sample: frames x 256 image tokens, text, answer labels at the end."""
    img = a["frames"] * 256
    seq = img + a["text_tokens"]
    vocab = cfg.text_config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, min(vocab - 1, 30000), (a["micro_batch"], seq), generator=g)
    ids[ids == cfg.image_token_id] = 0
    ids[:, 16:16 + img] = cfg.image_token_id
    keep = a["label_tokens"] + 1
    labels = ids[:, -keep:].clone()
    labels[:, 0] = -100
    size = cfg.vision_config.image_size
    size = size[0] if isinstance(size, (list, tuple)) else size
    pixels = torch.randn(a["micro_batch"] * a["frames"], 3, size, size, generator=g)
    return {"input_ids": ids.to(device), "labels": labels.to(device), "logits_to_keep": keep,
            "pixel_values": pixels.to(device=device, dtype=torch.bfloat16)}


def rss_bytes():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_row(row, a, rank, world, local_rank, device, torch, dist):
    cuda = device.startswith("cuda")
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated() if cuda else rss_bytes()
    hidden = json.loads((Path(row["model_dir"]) / "config.json").read_text())["text_config"]["hidden_size"]
    config = ds_config(row["zero"], hidden, a["micro_batch"], a["z3_reuse"], a["grad_accum"]) if row["zero"] else None
    zero_init = row["zero"] == 3 and row["size"] in a["zero_init_sizes"]
    model, cfg = build_model(row["model_dir"], row["tuner"], device, torch, config if zero_init else None,
                             checkpoint=row.get("ckpt", "all"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.05, fused=cuda)
    if row["zero"] == 0:
        engine = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if cuda else None) \
            if world > 1 else model
    else:
        import deepspeed

        engine, opt, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=config)
    batch = make_batch(cfg, a, device, torch)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated() if cuda else rss_bytes()
    times = []
    accum = a["grad_accum"]
    for _ in range(a["steps"]):  # one optimizer step = ``accum`` micro-batches
        if dist.is_initialized():
            dist.barrier()
        t0 = time.perf_counter()
        for k in range(accum):
            if row["zero"] == 0:
                last = k == accum - 1
                with (engine.no_sync() if world > 1 and not last else contextlib.nullcontext()):
                    loss = engine(**batch).loss
                    (loss / accum).backward()
                if last:
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
            else:
                loss = engine(**batch).loss
                engine.backward(loss)
                engine.step()  # DeepSpeed steps the optimizer at the accumulation boundary only
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if cuda else rss_bytes()) - base
    out = {"peak": peak, "after_init": start - base, "baseline": base, "loss": float(loss.detach().float()),
           "step_s": times, "trainable": sum(getattr(p, "ds_numel", p.numel()) for p in params)}
    if hasattr(engine, "destroy"):
        engine.destroy()
    del engine, model, opt, params, batch, loss
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def worker(args):
    import torch
    import torch.distributed as dist

    rows = json.loads(Path(args.rows).read_text())
    a = json.loads(Path(args.rows).with_suffix(".args.json").read_text())
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = f"cuda:{local_rank}" if a["device"] == "cuda" else "cpu"
    if a["device"] == "cuda":
        torch.cuda.set_device(local_rank)
    else:
        torch.set_num_threads(1)
    if world > 1 or any(r["zero"] for r in rows):
        from datetime import timedelta

        dist.init_process_group("nccl" if a["device"] == "cuda" else "gloo", timeout=timedelta(minutes=5))
    for row in rows:
        try:
            res = run_row(row, a, rank, world, local_rank, device, torch, dist)
            err = None
        except Exception as exc:  # record and go on: one failing row must not lose the others
            res, err = None, f"{type(exc).__name__}: {str(exc)[:300]}"
            gc.collect()
        results = [None] * world
        if dist.is_initialized():
            dist.all_gather_object(results, (res, err))
        else:
            results = [(res, err)]
        if rank == 0:
            errs = [e for _, e in results if e]
            ok = [r for r, _ in results if r]
            rec = dict(row, error=errs[0] if errs else None)
            if ok and not errs:
                steps = ok[0]["step_s"]
                timed = steps[len(steps) // 2:] or steps
                rec.update(measured_per_rank=[r["peak"] for r in ok], measured=max(r["peak"] for r in ok),
                           after_init=max(r["after_init"] for r in ok), baseline=max(r["baseline"] for r in ok),
                           step_s=max(sum(r["step_s"][len(steps) // 2:] or r["step_s"]) / len(timed) for r in ok),
                           loss=ok[0]["loss"], trainable_measured=ok[0]["trainable"])
            with open(args.part, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            msg = rec["error"] or f"peak {rec['measured'] / GIB:.2f} GiB, {rec['step_s']:.3f} s/step"
            print(f"[recipe_memory] {row_key(row)}: {msg}", flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- driver
def setup_for(row, a, arch):
    return TrainSetup(tuner=row["tuner"], zero=row["zero"], world=row["world"], micro_batch=a["micro_batch"],
                      frames=a["frames"], text_tokens=a["text_tokens"], label_tokens=a["label_tokens"],
                      checkpoint_layers=ckpt_layers(row.get("ckpt", "all"), arch.text.layers), lora_rank=16,
                      autocast=False)  # a plain bf16 loop: peft's fp32 adapters see fp32 inputs


def plan_rows(args):
    rows = {}
    sizes = ["tiny"] if args.tiny else args.sizes.split(",")
    for size in sizes:
        for tuner in args.tuners.split(","):
            for zero in [int(z) for z in args.zero.split(",")]:
                for ckpt in args.checkpoint.split(","):
                    world = 1 if zero == 0 else args.gpus
                    r = dict(size=size, tuner=tuner, zero=zero, world=world, kind=["memory"], ckpt=ckpt)
                    rows[row_key(r)] = r
    for spec in args.scaling.split(",") if args.scaling else []:
        size, tuner, zero = spec.split(":")
        size = "tiny" if args.tiny else size
        for world in sorted({w for w in (1, 2, 4) if w <= args.gpus}):
            r = dict(size=size, tuner=tuner, zero=int(zero), world=world, kind=["scaling"])
            key = row_key(r)
            if key in rows:
                rows[key]["kind"].append("scaling")
            else:
                rows[key] = r
    return list(rows.values())


def launch(world, rows, a, work, args):
    rows_file = work / f"rows-x{world}.json"
    rows_file.write_text(json.dumps(rows))
    rows_file.with_suffix(".args.json").write_text(json.dumps(a))
    part = work / f"part-x{world}.jsonl"
    part.unlink(missing_ok=True)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
            str(Path(__file__).resolve()), "--worker", "--rows", str(rows_file), "--part", str(part)]
    print(f"[recipe_memory] launching {world} process(es) for {len(rows)} row(s): {' '.join(argv)}", flush=True)
    try:
        subprocess.run(argv, env=env, timeout=args.group_timeout, check=False)
    except subprocess.TimeoutExpired:
        print(f"[recipe_memory] {world}-process group timed out after {args.group_timeout}s", flush=True)
    done = [json.loads(l) for l in part.read_text().splitlines()] if part.exists() else []
    seen = {row_key(r) for r in done}
    done += [dict(r, error="not run (group crashed or timed out)") for r in rows if row_key(r) not in seen]
    return done


def report(results, a, device):
    unit = "GiB" if device == "cuda" else "GiB (CPU: max RSS growth, not comparable)"
    print(f"\nPeak memory per GPU, measured vs planned ({unit}); frames={a['frames']} "
          f"seq={a['frames'] * 256 + a['text_tokens']} micro_batch={a['micro_batch']}")
    head = f"{'model':6} {'tuner':5} {'zero':>4} {'gpus':>4} {'ckpt':>4} {'measured':>9} {'planned':>8} {'ratio':>6} {'s/step':>7}  note"
    print(head)
    print("-" * len(head))
    for r in results:
        m, p = r.get("measured"), r["predicted"]["total"]
        if m is None:
            line = f"{'':>9} {p / GIB:8.2f} {'':>6} {'':>7}  {r['error']}"
        elif device != "cuda":
            line = f"{m / GIB:9.2f} {p / GIB:8.2f} {'n/a':>6} {r['step_s']:7.3f}  code path only (CPU)"
        else:
            r["ratio"] = m / p
            r["within_20pct"] = abs(r["ratio"] - 1) <= 0.20
            line = f"{m / GIB:9.2f} {p / GIB:8.2f} {r['ratio']:6.2f} {r['step_s']:7.3f}  " + \
                   ("ok" if r["within_20pct"] else "OUTSIDE +-20%")
        print(f"{r['size']:6} {r['tuner']:5} {r['zero']:>4} {r['world']:>4} {str(r.get('ckpt', 'all')):>4} " + line)
    scaling = []
    groups = {}
    for r in results:
        if "scaling" in r["kind"] and r.get("step_s"):
            groups.setdefault((r["size"], r["tuner"], r["zero"]), {})[r["world"]] = r["step_s"]
    if groups:
        print("\nScaling (same micro-batch per GPU): efficiency = step time on 1 GPU / step time on N GPUs")
        for (size, tuner, zero), times in groups.items():
            for world, t in sorted(times.items()):
                if 1 in times:
                    eff = times[1] / t
                    samples = world * a["micro_batch"] * a["grad_accum"] / t
                    scaling.append(dict(size=size, tuner=tuner, zero=zero, world=world, step_s=t,
                                        samples_per_s=samples, efficiency=eff, meets_85pct=eff >= 0.85))
                    print(f"  {size:5} {tuner:5} zero{zero} x{world}: {samples:7.2f} samples/s, "
                          f"efficiency {eff:6.1%}" + ("" if world == 1 or eff >= 0.85 else "  (< 85%)"))
    return scaling


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy-size model (proves the code path on CPU)")
    ap.add_argument("--sizes", default="1B,2B,8B")
    ap.add_argument("--tuners", default="lora,full")
    ap.add_argument("--zero", default="0,2,3", help="ZeRO stages; 0 runs on 1 GPU, 2/3 on --gpus")
    ap.add_argument("--gpus", type=int, default=None, help="GPUs for ZeRO-2/3 rows (default: all visible, max 4)")
    ap.add_argument("--scaling", default="1B:full:2,8B:lora:2", help="SIZE:TUNER:ZERO run on 1, 2 and 4 GPUs")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--checkpoint", default="all",
                    help="comma list: LLM layers under gradient checkpointing per row: all, none, half or a number")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--text-tokens", type=int, default=256)
    ap.add_argument("--label-tokens", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (timed together)")
    ap.add_argument("--z3-reuse", type=float, default=1e9,
                    help="ZeRO-3 stage3_max_reuse_distance and max_live_parameters (ms-swift: 1e9)")
    ap.add_argument("--zero-init-sizes", default="78B",
                    help="sizes built already partitioned (deepspeed.zero.Init) in ZeRO-3 rows")
    ap.add_argument("--group-timeout", type=int, default=300, help="seconds per GPU-count group")
    ap.add_argument("--workdir", help="where model configs and partial results go (default: a temp dir)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.gpus is None:
        if args.device == "cuda":
            import torch

            args.gpus = min(4, torch.cuda.device_count())
        else:
            args.gpus = 2
    if args.tiny:
        args.frames = min(args.frames, 2)
        args.text_tokens = min(args.text_tokens, 64)
        args.label_tokens = min(args.label_tokens, 16)
    a = dict(device=args.device, frames=args.frames, text_tokens=args.text_tokens, label_tokens=args.label_tokens,
             micro_batch=args.micro_batch, grad_accum=args.grad_accum, steps=args.steps, z3_reuse=int(args.z3_reuse),
             zero_init_sizes=[x for x in args.zero_init_sizes.split(",") if x])
    work = Path(args.workdir or tempfile.mkdtemp(prefix="recipe_memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = plan_rows(args)
    archs = {}
    for r in rows:  # a config-only model dir per size: the worker initialises weights on the GPU
        arch = TINY if r["size"] == "tiny" else ARCHS[r["size"]]
        mdir = work / "models" / r["size"]
        mdir.mkdir(parents=True, exist_ok=True)
        image_token = arch.text.vocab - 1 if r["size"] == "tiny" else 151667
        (mdir / "config.json").write_text(json.dumps(hf_config_dict(arch, image_token), indent=1))
        r["model_dir"] = str(mdir)
        archs[r["size"]] = arch_from_config(mdir, name=r["size"])  # the planner reads the same config
    results = []
    for world in sorted({r["world"] for r in rows}):
        results += launch(world, [r for r in rows if r["world"] == world], a, work, args)
    for r in results:
        r["predicted"] = estimate(archs[r["size"]], setup_for(r, a, archs[r["size"]])).__dict__
        r["predicted"].pop("notes", None)
    scaling = report(results, a, args.device)
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": a, "gpus": args.gpus, "rows": results,
                                              "scaling": scaling}, indent=1))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
