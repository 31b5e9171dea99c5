"""One ``swift sft`` run of ``gpu_train.py``: its command line, the process (own group, killed whole on a
timeout), and the summary of what the timer callback recorded (samples/s, tokens/s, padding, MFU).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from gpu_train_data import ARCHS
from gpu_train_timer import CALLBACK

REPO = Path(__file__).resolve().parent.parent
TIMER_PLUGIN = Path(__file__).resolve().with_name("gpu_train_timer.py")  # what swift loads: registers CALLBACK
H200_BF16_TFLOPS = 989.0  # dense bf16 peak (NVIDIA H200 SXM datasheet)


def swift_argv(model: Path, data: Path, tuner: str, micro: int, global_batch: int, steps: int, out: Path,
               ours: bool, device: str, workers: int, compile_layers: bool = False, accum: int = 0,
               checkpointing: bool = None, callbacks: list = (), max_length: int = 8192) -> list:
    argv = [sys.executable, "-m", "swift.cli.main", "sft", "--model", str(model), "--dataset", str(data),
            "--split_dataset_ratio", "0", "--tuner_type", tuner, "--torch_dtype", "bfloat16" if device == "cuda"
            else "float32", "--freeze_vit", "true", "--freeze_aligner", "true", "--learning_rate", "1e-4",
            "--per_device_train_batch_size", str(micro), "--gradient_accumulation_steps",
            str(accum or max(1, global_batch // micro)), "--max_steps", str(steps), "--logging_steps", "1",
            "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none", "--max_length", str(max_length),
            "--attn_impl", "sdpa", "--output_dir", str(out), "--check_model", "false", "--seed", "42",
            "--external_plugins", str(TIMER_PLUGIN),
            *([str(REPO / "ivl3_plugin" / "hosts" / "swift" / "external_plugin.py")] if ours else []), "--callbacks", CALLBACK,
            *(["ivl3_compile"] if ours and compile_layers else []), *callbacks,
            "--dataset_num_proc", "1", "--dataloader_num_workers", str(workers)]
    if checkpointing is not None:
        argv += ["--gradient_checkpointing", "true" if checkpointing else "false"]
    if tuner == "lora":
        argv += ["--lora_rank", "8", "--lora_alpha", "32", "--target_modules", "all-linear"]
    if ours:
        argv += ["--template", "ivl3_video", "--dataloader_prefetch_factor", "4"]
    else:  # internvl_hf has no default system prompt; give it InternVL3's, as ours uses, so the tokens match
        from ivl3_plugin.template.spec import INTERNVL3_SYSTEM

        argv += ["--system", INTERNVL3_SYSTEM]
    return argv


def run_one(name: str, argv: list, out: Path, env: dict, timeout: int, profile: Path = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    stats = out / "bench.json"
    stats.unlink(missing_ok=True)
    env = dict(env, IVL3_BENCH_OUT=str(stats))
    if profile is not None:  # sample the trainer's Python stacks (collapsed format: one stack per line)
        profile.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or next((str(Path(d) / "bin" / "py-spy") for d in sys.path
                                               if (Path(d) / "bin" / "py-spy").exists()), "py-spy")
        argv = [spy, "record", "--format", "raw", "--rate", "200", "--nonblocking", "--subprocesses",
                "-o", str(profile / (name.replace("/", "_") + ".txt")), "--", *argv]
    t0 = time.perf_counter()
    # its own process group: on a timeout the trainer ms-swift starts as a child goes too (it holds the GPU)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        rc = f"timeout after {timeout}s"
    wall = time.perf_counter() - t0
    (out / "log.txt").write_text(log or "")
    if rc != 0 or not stats.exists():
        print(f"[{name}] FAILED (rc {rc}); last output:\n{(log or '')[-3000:]}", flush=True)
        return {"name": name, "failed": True, "rc": rc, "wall_s": wall}
    res = json.loads(stats.read_text())
    res.update(name=name, wall_s=wall)
    return res


def summarise(res: dict, warmup: int, flops_per_token: float, peak_tflops: float) -> dict:
    if res.get("failed"):
        return res
    ends, samples, tokens = res["step_ends"], res["samples"], res["tokens"]
    w = min(warmup, len(samples) - 1)
    dt = ends[-1] - ends[w]
    n_s, n_t = sum(samples[w:]), sum(tokens[w:])
    slots = res.get("slots") or tokens
    out = dict(res, measured_steps=len(samples) - w, s_per_step=dt / max(1, len(samples) - w),
               samples_per_s=n_s / dt, tokens_per_s=n_t / dt, tokens_per_sample=n_t / max(1, n_s),
               # padded positions / all positions of every micro-batch fed (warm-up steps included: padding
               # depends on which samples meet in a batch, not on timing)
               padding_fraction=1 - sum(tokens) / max(1, sum(slots)), slots_per_s=sum(slots[w:]) / dt)
    out["mfu"] = mfu(out["tokens_per_s"], flops_per_token, peak_tflops)
    return out


def mfu(tokens_per_s: float, flops_per_token: float, peak_tflops: float):
    """Share of the GPU's peak the model FLOPs of ``tokens_per_s`` make (None without a peak)."""
    return tokens_per_s * flops_per_token / (peak_tflops * 1e12) if peak_tflops else None


def flops_per_token(arch: str, tuner: str, tokens_per_sample: float, tiles_per_sample: float) -> float:
    """Model FLOPs per sequence token (recompute excluded): LLM 6N (full) or 4N (LoRA: no weight grads),
    causal attention forward and backward, plus the frozen ViT's forward (2N per patch token) spread over the
    sequence.  The same count as the planner's ``speed.flops_per_sample`` (tests/test_benchmark_flops.py)."""
    a = ARCHS[arch]
    t, v = a["text"], a["vision"]
    h, f, L = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
    kv = h // t["num_attention_heads"] * t["num_key_value_heads"]
    n_llm = L * (h * h * 2 + 2 * h * kv + 3 * h * f)
    mult = 6 if tuner == "full" else 4
    # causal QK^T + AV: 2*T*h per token forward, x3 with backward for LoRA too: attention has no weights, and
    # the gradient must still reach every earlier layer's adapters through dQ, dK and dV (counted x2 for LoRA
    # before 2026-12-06, which put LoRA's MFU 3 % (8B) to 4 % (1B) low)
    attn = 6 * L * h * tokens_per_sample
    vh, vL = v["hidden_size"], v["num_hidden_layers"]
    n_vit = vL * (4 * vh * vh + 2 * vh * v["intermediate_size"])
    patches = 1025
    vit = tiles_per_sample * patches * (2 * n_vit + 4 * vL * vh * patches)
    proj = tiles_per_sample * 256 * 2 * (4 * vh * h + h * h)
    return mult * n_llm + attn + (vit + proj) / tokens_per_sample
