#!/usr/bin/env python3
"""Host or GPU bound?  One training step of a real-size InternVL3 under torch.profiler, no ms-swift.

Builds the random-init model (``ivl3_plugin.recipe.arch``), sets it up as the LoRA / full recipes do
(frozen ViT and projector, gradient checkpointing, LoRA r8/alpha32 on every LLM linear, loss on the
answer only through ``logits_to_keep``), runs two warm-up steps on one 16-frame sample (4,435 tokens),
then profiles one: prints the step time, the host's total op time (self CPU) next to the GPU's (self
CUDA), and the ops that cost most.  A step whose self-CPU total exceeds its self-CUDA total is bound by
the host (Python + kernel launches), and a larger or faster GPU would not help it.

``--timed N`` first times N steps without the profiler (samples of three lengths in turn, as the text
part varies in real data) and reports ms per step and the peak memory; ``--compile`` compiles each
repeated layer first (``ivl3_plugin.recipe.compile``), to compare the two in one command each.

``--attention`` instead times scaled_dot_product_attention forward + backward alone, at the LLM's and the
ViT's shapes for one 16-frame sample, on each SDPA backend (flash, cuDNN, memory-efficient; GQA through
``enable_gqa`` or by repeating K/V as transformers does when it passes a mask), with its TFLOP/s.

GPU: python3 benchmarks/step_profile.py --size 1B --tuner lora
     python3 benchmarks/step_profile.py --size 1B --tuner lora --compile --timed 12
     python3 benchmarks/step_profile.py --size 8B --attention
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipe_memory.py: the same model set-up

from recipe_memory import build_model  # noqa: E402


def build(size: str, tuner: str, lora_dtype: str, lora_dropout: float, device: str = "cuda",
          reentrant: bool = False):
    """recipe_memory's model, with gpu_train's LoRA rank (8); ``lora_dtype`` bfloat16 casts the adapters;
    ``reentrant`` switches to the reentrant checkpoint ms-swift uses on one GPU."""
    import torch

    from ivl3_plugin.recipe.arch import ARCHS, hf_config_dict

    folder = Path(tempfile.mkdtemp())
    (folder / "config.json").write_text(json.dumps(hf_config_dict(ARCHS[size])))
    model, cfg = build_model(folder, tuner, device, torch, lora_rank=8, lora_dropout=lora_dropout)
    if tuner == "lora" and lora_dtype == "bfloat16":
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    if reentrant:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    return model, cfg


def sample(cfg, frames: int = 16, text: int = 339, answer: int = 60):
    import torch

    ids = torch.randint(0, 30000, (1, frames * 256 + text))
    ids[:, 16:16 + frames * 256] = cfg.image_token_id
    labels = ids[:, -(answer + 1):].clone()
    labels[:, 0] = -100
    return {"input_ids": ids.cuda(), "labels": labels.cuda(), "logits_to_keep": answer + 1,
            "pixel_values": torch.randn(frames, 3, 448, 448, device="cuda", dtype=torch.bfloat16)}


def attention_bench(size: str, tokens: int = 4435, frames: int = 16, repeat: int = 10) -> list:
    """ms per forward + backward of SDPA per backend at the LLM's (causal, GQA) and the ViT's shapes."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ivl3_plugin.recipe.arch import ARCHS

    a = ARCHS[size]
    t, v = a.text, a.vision
    rows = []
    shapes = [("LLM", 1, t.heads, t.kv_heads, tokens, t.dim, True),
              ("ViT", frames, v.heads, v.heads, v.tokens_per_tile, v.hidden // v.heads, False)]
    for label, b, hq, hkv, n, d, causal in shapes:
        flops = 4.0 * b * hq * n * n * d * (0.5 if causal else 1.0) * 3.5  # forward 1x, backward 2.5x
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            for gqa in ((True, False) if hkv != hq else (False,)):
                q = torch.randn(b, hq, n, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                k = torch.randn(b, hkv, n, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                vv = torch.randn(b, hkv, n, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)

                def run():
                    kk, vvv = (k, vv) if gqa or hkv == hq else (k.repeat_interleave(hq // hkv, 1),
                                                                 vv.repeat_interleave(hq // hkv, 1))
                    kw = {"enable_gqa": True} if gqa else {}
                    with sdpa_kernel([backend]):
                        out = F.scaled_dot_product_attention(q, kk, vvv, is_causal=causal, **kw)
                    out.backward(torch.ones_like(out))

                name = f"{label} {str(backend).split('.')[-1].lower()}{' gqa' if gqa else (' repeat-kv' if hkv != hq else '')}"
                try:
                    run()
                    torch.cuda.synchronize()
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    for _ in range(repeat):
                        run()
                    end.record()
                    torch.cuda.synchronize()
                    ms = start.elapsed_time(end) / repeat
                    rows.append((name, ms, flops / ms / 1e9))
                    print(f"ATTN {name:34} {ms:8.2f} ms fwd+bwd  {flops / ms / 1e9:6.0f} TFLOP/s", flush=True)
                except RuntimeError as exc:
                    rows.append((name, None, None))
                    print(f"ATTN {name:34} not available: {str(exc).splitlines()[0][:90]}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1B")
    ap.add_argument("--tuner", choices=["lora", "full"], default="lora")
    ap.add_argument("--lora-dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--rows", type=int, default=20, help="ops listed")
    ap.add_argument("--compile", action="store_true", help="compile each repeated layer first")
    ap.add_argument("--reentrant", action="store_true", help="reentrant checkpointing (ms-swift on one GPU)")
    ap.add_argument("--timed", type=int, default=0, help="steps timed without the profiler first")
    ap.add_argument("--no-profile", action="store_true", help="skip the profiled step")
    ap.add_argument("--attention", action="store_true", help="time SDPA backends at this size's shapes, then stop")
    ap.add_argument("--json", default=None, help="with --attention: write the timings here")
    args = ap.parse_args(argv)
    if args.attention:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        rows = attention_bench(args.size)
        if args.json:
            Path(args.json).write_text(json.dumps([{"name": n, "ms": ms, "tflops": tf} for n, ms, tf in rows]))
        return 0

    import torch
    from torch.profiler import ProfilerActivity, profile

    model, cfg = build(args.size, args.tuner, args.lora_dtype, args.lora_dropout, reentrant=args.reentrant)
    if args.compile:
        from ivl3_plugin.recipe.compile import compile_layers

        print("compiled:", compile_layers(model))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    batches = [sample(cfg, text=339 + 5 * i) for i in range(3)]
    batch = batches[0]

    def step(b=None):
        model(**(b or batch)).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    for b in batches:  # every length once: compiles (if any) happen here
        step(b)
    torch.cuda.synchronize()
    print(f"warm-up ({len(batches)} steps, compile included): {time.perf_counter() - t0:.1f} s")
    if args.timed:
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for i in range(args.timed):
            step(batches[i % len(batches)])
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / args.timed * 1e3
        peak = torch.cuda.max_memory_allocated() / 2 ** 30
        print(f"TIMED {args.size} {args.tuner} compile={args.compile} reentrant={args.reentrant} "
              f"lora_dtype={args.lora_dtype} dropout={args.lora_dropout}: {ms:.1f} ms/step, peak {peak:.2f} GiB")
    if args.no_profile:
        return 0
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60)
    print(table)
    # the table's own totals: summing the events here would count each kernel's time twice
    cpu, gpu = (_total_ms(table, what) for what in ("CPU", "CUDA"))
    print(f"{args.size} {args.tuner}: step {wall * 1e3:.0f} ms under the profiler; host ops {cpu:.0f} ms "
          f"(self CPU), GPU kernels {gpu:.0f} ms (self CUDA) -> {'host' if cpu > gpu else 'GPU'}-bound "
          f"(host/GPU {cpu / max(gpu, 1e-9):.2f}x)")
    return 0


def _total_ms(table: str, what: str) -> float:
    import re

    m = re.search(rf"Self {what} time total: ([0-9.]+)(us|ms|s)", table)
    if m is None:
        raise SystemExit(f"no 'Self {what} time total' in the profiler table")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


if __name__ == "__main__":
    raise SystemExit(main())
