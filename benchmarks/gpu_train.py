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
Timing comes from a trainer callback (this same file, passed to swift as an external plugin)
that synchronises the GPU at every optimizer step; the first ``--warmup`` steps are not counted.

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
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CALLBACK = "ivl3_bench_timer"
H200_BF16_TFLOPS = 989.0  # dense bf16 peak (NVIDIA H200 SXM datasheet)

# Real InternVL3 shapes (design.md): vision InternViT-300M; LLM Qwen2.5-0.5B / -7B.
VIT_300M = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
ARCHS = {
    "1b": dict(vision=VIT_300M, text=dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                                          num_key_value_heads=2, intermediate_size=4864, tie_word_embeddings=True)),
    "8b": dict(vision=VIT_300M, text=dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
                                          num_key_value_heads=4, intermediate_size=18944, tie_word_embeddings=False)),
    "tiny": dict(vision=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
                 text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           intermediate_size=256, tie_word_embeddings=True)),
}
QWEN_VOCAB = 151674
# config name -> (arch, tuner, our micro-batch)
CONFIGS = {"1b-lora": ("1b", "lora", 4), "1b-full": ("1b", "full", 4), "8b-lora": ("8b", "lora", 2),
           "8b-full": ("8b", "full", 2), "tiny-lora": ("tiny", "lora", 2), "tiny-full": ("tiny", "full", 2)}


# ----------------------------------------------------------------------------- callback (runs inside swift)
def _register_timer_callback() -> None:
    """Imported by swift via ``--external_plugins``: time each optimizer step, count samples/tokens."""
    import torch
    from swift.callbacks import callbacks_map
    from swift.callbacks.base import TrainerCallback

    class BenchTimer(TrainerCallback):
        def __init__(self, args, trainer):
            super().__init__(args, trainer)
            self.marks, self.samples, self.tokens, self.slots = [], [0], [0], [0]
            self.batch_rows = []  # (samples, real tokens, slots) of each micro-batch fed
            original = trainer.training_step

            def counted(model, inputs, *a, **k):
                # measured on the collated batch the model gets: slots = every position of input_ids
                # (padding included), tokens = the real ones (attention mask; no mask = packed, no padding)
                ids = inputs["input_ids"]
                mask = inputs.get("attention_mask")
                n = int(ids.shape[0]) if mask is not None or "position_ids" not in inputs \
                    else int((inputs["position_ids"] == 0).sum())
                real = int(mask.sum()) if mask is not None else int(ids.numel())
                self.samples[-1] += n
                self.tokens[-1] += real
                self.slots[-1] += int(ids.numel())
                self.batch_rows.append((n, real, int(ids.numel())))
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

        def on_step_begin(self, args, state, control, **kw):
            if self.profile_at and state.global_step + 1 == self.profile_at:
                from torch.profiler import ProfilerActivity, profile

                self._sync()
                self.prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
                self.prof.__enter__()
                self.prof_t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.marks.append(self._sync())
            self.samples.append(0)
            self.tokens.append(0)
            self.slots.append(0)
            if self.prof is not None and state.global_step == self.profile_at:
                self.prof.__exit__(None, None, None)
                self.prof_wall = self.marks[-1] - self.prof_t0
                self.profile_summary = kernel_breakdown(self.prof, self.prof_wall)

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
    """GPU time of one profiled step by kernel kind, the 25 longest kernels, and the GPU's idle share."""
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
            "top_kernels_ms": [(n[:140], v / 1e3) for n, v in longest]}


# ----------------------------------------------------------------------------- inputs: model dirs, videos
def build_model(arch: str, out: Path, device: str) -> Path:
    """Random-init transformers-native InternVL3 at the real sizes (tokenizer: the tiny one, real vocab size)."""
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor

    try:
        from transformers import GotOcr2ImageProcessorPil as GotOcr2ImageProcessor
    except ImportError:  # older transformers 5.x
        from transformers import GotOcr2ImageProcessor

    from ivl3_plugin.tiny.model import CHAT_TEMPLATE, demo_text
    from ivl3_plugin.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer(demo_text())
    a = ARCHS[arch]
    vocab = len(tok) if arch == "tiny" else QWEN_VOCAB
    config = InternVLConfig(
        vision_config=dict(a["vision"], image_size=[448, 448], patch_size=[14, 14]),
        text_config=dict(a["text"], model_type="qwen2", vocab_size=vocab, max_position_embeddings=32768,
                         bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                         eos_token_id=tok.convert_tokens_to_ids("<|im_end|>")),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=256, downsample_ratio=0.5,
        # transformers ties lm_head by the top-level flag (default True), not text_config's: 8B is untied
        tie_word_embeddings=a["text"]["tie_word_embeddings"])
    config.architectures = ["InternVLForConditionalGeneration"]
    torch.manual_seed(0)
    dev = "cuda" if device == "cuda" else "cpu"
    dtype = torch.float32 if arch == "tiny" else torch.bfloat16
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build 8B directly in bf16 (no 32 GB fp32 detour)
    try:
        with torch.device(dev):
            model = InternVLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    del model
    if dev == "cuda":
        torch.cuda.empty_cache()
    norm = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    kwargs = {}
    try:
        from transformers import InternVLVideoProcessor

        kwargs["video_processor"] = InternVLVideoProcessor(size={"height": 448, "width": 448}, **norm)
    except Exception:
        pass
    InternVLProcessor(image_processor=GotOcr2ImageProcessor(size={"height": 448, "width": 448},
                                                               crop_to_patches=False, do_convert_rgb=True, **norm),
                      tokenizer=tok, image_seq_length=256, chat_template=CHAT_TEMPLATE, **kwargs).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_video(path: Path, frames: int, size: int, seed: int) -> None:
    """A synthetic clip: a coloured square crossing a noisy background (PyAV, else OpenCV)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    colour = rng.integers(0, 255, 3, dtype=np.uint8)
    imgs = []
    for t in range(frames):
        img = base.copy()
        x = int((size - size // 4) * t / max(1, frames - 1))
        img[size // 3: size // 3 + size // 4, x: x + size // 4] = colour
        imgs.append(img)
    try:
        import av

        with av.open(str(path), "w") as box:
            st = box.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=8)
            st.width = st.height = size
            st.pix_fmt = "yuv420p"
            for img in imgs:
                box.mux(st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            box.mux(st.encode())
    except ImportError:
        import cv2

        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (size, size))
        for img in imgs:
            w.write(img[:, :, ::-1])
        w.release()


def make_data(work: Path, n_videos: int, frames: int, size: int, mixed: tuple = None) -> dict:
    """Raw videos + annotations (native rows) and the same videos converted (our rows); ``mixed=(lo, hi)``:
    clips of lo..hi frames and summaries of 1-8 sentences instead (``benchmarks/mixed_data.py``)."""
    if mixed:
        from mixed_data import make_mixed_data

        return make_mixed_data(work / f"mixed-{mixed[0]}-{mixed[1]}", n_videos, mixed[0], mixed[1], size, write_video)
    vids = work / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    ann, native = [], []
    for i in range(n_videos):
        p = vids / f"clip{i:03d}.mp4"
        if not p.exists():
            write_video(p, frames, size, seed=i)
        summary = f"A coloured square moves from left to right in clip {i}."
        ann.append({"id": f"clip{i:03d}", "video": str(p), "summary": summary})
    (work / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ann))
    from ivl3_plugin.convert import convert
    from ivl3_plugin.shared.prompts import render_instruction

    conv = work / "converted"
    try:
        convert(work / "annotations.jsonl", conv, num_frames=frames, val_fraction=0.0, formats=["swift"])
    except TypeError:  # older converter signature
        convert(work / "annotations.jsonl", conv, num_frames=frames, val_fraction=0.0)
    ours = conv / "swift" / "train.jsonl"
    instruction = render_instruction("concise")
    for r in ann:  # ms-swift's own format: the raw file, the same instruction and answer
        native.append({"messages": [{"role": "user", "content": "<video>" + instruction},
                                    {"role": "assistant", "content": r["summary"]}], "videos": [r["video"]]})
    (work / "native.jsonl").write_text("".join(json.dumps(r) + "\n" for r in native))
    n_ours = sum(1 for line in ours.read_text().splitlines() if line.strip())
    if n_ours != n_videos:
        raise SystemExit(f"converter wrote {n_ours} rows for {n_videos} videos ({ours})")
    return {"ours": ours, "native": work / "native.jsonl"}


# ----------------------------------------------------------------------------- runs
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
            "--external_plugins", str(Path(__file__).resolve()),
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
    out["mfu"] = (out["tokens_per_s"] * flops_per_token / (peak_tflops * 1e12)) if peak_tflops else None
    return out


def flops_per_token(arch: str, tuner: str, tokens_per_sample: float, tiles_per_sample: float) -> float:
    """Model FLOPs per sequence token (recompute excluded): LLM 6N (full) or 4N (LoRA: no weight grads),
    causal attention, plus the frozen ViT's forward (2N per patch token) spread over the sequence."""
    a = ARCHS[arch]
    t, v = a["text"], a["vision"]
    h, f, L = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
    kv = h // t["num_attention_heads"] * t["num_key_value_heads"]
    n_llm = L * (h * h * 2 + 2 * h * kv + 3 * h * f)
    mult = 6 if tuner == "full" else 4
    attn = mult * L * h * tokens_per_sample  # causal QK^T + AV: 2*T*h per token forward; x3 full, x2 LoRA
    vh, vL = v["hidden_size"], v["num_hidden_layers"]
    n_vit = vL * (4 * vh * vh + 2 * vh * v["intermediate_size"])
    patches = 1025
    vit = tiles_per_sample * patches * (2 * n_vit + 4 * vL * vh * patches)
    proj = tiles_per_sample * 256 * 2 * (4 * vh * h + h * h)
    return mult * n_llm + attn + (vit + proj) / tokens_per_sample


SIDES = ("native", "ours", "ours1", "group", "plan", "plan80", "planx", "plang")
GROUP = "ivl3_length_group"  # the callback of the group/plang sides: micro-batches of similar length
PLAN_TEXT_TOKENS, PLAN_LABEL_TOKENS = 339, 61  # a sample here: 16 x 256 image tokens + 339 text, ~60 answer tokens


@dataclass
class Side:
    """How one side trains: data, batch split, workers, compiled layers, checkpointed LLM layers
    (None: ms-swift's default, all), our callbacks and their run settings, extra swift arguments."""

    rows: Path
    micro: int
    accum: int
    workers: int
    compiled: bool
    all_layers: bool
    callbacks: list
    callback_args: dict
    layers: object
    extra: list = field(default_factory=list)
    plan: object = None

    def same_as(self, other: "Side") -> bool:
        return (self.micro, self.accum, self.layers, self.callbacks, self.callback_args) == \
            (other.micro, other.accum, other.layers, other.callbacks, other.callback_args)

    def with_extra(self, extra: list, callback_args: dict) -> "Side":
        merged = {k: dict(v) for k, v in self.callback_args.items()}
        for k, v in callback_args.items():
            merged[k] = {**merged.get(k, {}), **v}
        return replace(self, extra=list(self.extra) + list(extra), callback_args=merged)


def planner_arch(arch: str, model_dir: Path):
    """The planner's view of the benchmark model: read from its config.json, as ``ivl3 plan DIR`` does."""
    from ivl3_plugin.recipe.arch import arch_from_config

    return arch_from_config(model_dir, name=f"InternVL3-{arch.upper()}")


def gpu_memory_gib() -> float:
    """This machine's first GPU, in GiB (a child process, so this one keeps no CUDA context for it)."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.get_device_properties(0).total_memory)"],
                         capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 2 ** 30


def plan_request(tuner: str, frames: int, gb: int, gpu_gib: float, max_length: int = 8192):
    from ivl3_plugin.recipe.plan import PlanRequest

    return PlanRequest(model="benchmark", gpus_per_node=1, gpu_memory_gib=gpu_gib, frames=frames, max_length=max_length,
                       tuner=tuner, global_batch=gb, max_micro_batch=None, text_tokens=PLAN_TEXT_TOKENS,
                       label_tokens=PLAN_LABEL_TOKENS, lora_rank=8, checkpointing="auto", objective="fastest")


def plan_side(arch, tuner: str, frames: int, gb: int, gpu_gib: float, rows: Path, workers: int,
              max_length: int = 8192) -> Side:
    """What ``ivl3 plan`` picks for one GPU of ``gpu_gib``, applied by ``ivl3 train --plan``'s own function."""
    from ivl3_plugin.recipe.plan import make_plan
    from ivl3_plugin.recipe.plan_apply import apply_plan
    from ivl3_plugin.settings import CALLBACK_ARGS

    plan = make_plan(plan_request(tuner, frames, gb, gpu_gib, max_length), arch)
    args = {"callbacks": []}
    apply_plan(args, plan)
    callbacks = [c for c in args.get("callbacks", []) if c != "ivl3_compile"]
    raw = (args.get("ENV") or {}).get(CALLBACK_ARGS.name)
    print(f"[plan {gpu_gib:.1f} GiB] {tuner}: micro-batch {plan.micro_batch} x {plan.grad_accum}, checkpointing "
          f"{plan.checkpointing}, predicted {plan.memory.total / 2 ** 30:.1f} GiB, "
          f"{plan.time.samples_per_s:.2f} samples/s" + (f"; runner-up: {plan.runner_up.describe()}"
                                                         if plan.runner_up else ""), flush=True)
    extra = ["--padding_side", args["padding_side"]] if "padding_side" in args else []
    return Side(rows, plan.micro_batch, plan.grad_accum, workers, plan.compiled, False, callbacks,
                json.loads(raw) if raw else {}, plan.checkpoint_layers, extra, plan)


def predict_side(arch, tuner: str, frames: int, st: Side, gb: int, max_length: int = 8192) -> dict:
    """The planner's memory and time for the setting a side runs (whatever chose it)."""
    from ivl3_plugin.recipe.memory import TrainSetup, estimate
    from ivl3_plugin.recipe.speed import step_time

    layers = arch.text.layers if st.layers is None else st.layers
    setup = TrainSetup(tuner=tuner, micro_batch=st.micro, frames=frames, text_tokens=PLAN_TEXT_TOKENS,
                       label_tokens=PLAN_LABEL_TOKENS, max_length=max_length, checkpoint_layers=layers, lora_rank=8,
                       compiled=st.compiled)
    t = step_time(arch, setup, st.accum, compiled=st.compiled)
    return {"peak_gib": estimate(arch, setup).total / 2 ** 30, "samples_per_s": t.samples_per_s,
            "checkpoint_layers": layers, "layers": arch.text.layers}


def print_profile(name: str, prof: dict) -> None:
    print(f"[{name}] profiled step: {prof['wall_ms']:.0f} ms wall, {prof['kernel_ms']:.0f} ms of kernels "
          f"(GPU idle {100 * prof['idle_share']:.0f}%)")
    for kind, ms in prof["kinds_ms"].items():
        print(f"    {kind:34} {ms:9.1f} ms  {100 * ms / max(prof['kernel_ms'], 1e-9):5.1f}%")
    for kname, ms in prof["top_kernels_ms"][:12]:
        print(f"    {ms:9.1f} ms  {kname[:110]}")


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
    ap.add_argument("--planx-extra", default="[]", help="JSON list of extra swift arguments for the planx side")
    ap.add_argument("--planx-callback-args", default="{}",
                    help="JSON object merged into the planx side's IVL3_CALLBACK_ARGS, e.g. "
                         "'{\"ivl3_compile\": {\"attention\": \"cudnn\"}}'")
    ap.add_argument("--torch-profile", default=None, help="side (e.g. plan): profile one extra, untimed step")
    ap.add_argument("--timeout", type=int, default=600, help="per run, seconds")
    ap.add_argument("--ours-extra", default="[]", help="JSON list of extra swift arguments for our sides")
    ap.add_argument("--native-extra", default="[]", help="JSON list of extra swift arguments for native")
    ap.add_argument("--ours-compile", default=None, choices=["on", "off"],
                    help="our recipes' ivl3_compile callback on our sides (default: on for cuda, off for cpu)")
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
    plan_cb = json.loads(args.plan_callback_args)
    if not isinstance(planx_cb, dict) or not isinstance(plan_cb, dict):
        ap.error("--plan-callback-args / --planx-callback-args: a JSON object")
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
    data = make_data(work / "data", n_videos, frames, 448 if not tiny else 96, mixed)
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
        pair = {}
        plan_arch = planner_arch(arch, model)
        gpu_gib = args.plan_gpu_memory or (gpu_memory_gib() if cuda else 80.0)
        setups = {"native": Side(data["native"], 1, max(1, gb), native_workers, False, True, [], {}, None),
                  "ours": Side(data["ours"], ours_micro, max(1, gb // ours_micro), ours_workers, ours_compile, True,
                               [], {}, None),
                  "ours1": Side(data["ours"], 1, gb, ours_workers, ours_compile, True, [], {}, None),
                  "group": Side(data["ours"], ours_micro, max(1, gb // ours_micro), ours_workers, ours_compile, True,
                                [GROUP], {}, None)}
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
            profile_step = steps + 1 if args.torch_profile == side else 0
            argv_ = swift_argv(model, st.rows, tuner, st.micro, gb, steps + (1 if profile_step else 0), run_dir, ours,
                               args.device, st.workers, compile_layers=st.compiled, accum=st.accum,
                               checkpointing=None if st.layers is None else st.layers > 0,
                               callbacks=st.callbacks, max_length=max_length) + extra[ours] + st.extra
            run_env = dict(env, **({"IVL3_CALLBACK_ARGS": json.dumps(st.callback_args)} if st.callback_args else {}),
                           **({"IVL3_BENCH_PROFILE_STEP": str(profile_step)} if profile_step else {}))
            res = run_one(name, argv_, run_dir, run_env, args.timeout, Path(args.profile) if args.profile else None)
            res["extra_args"] = extra[ours] + st.extra
            res["compiled"] = st.compiled
            res.update(micro_batch=st.micro, grad_accum=st.accum, workers=st.workers, callbacks=st.callbacks,
                       callback_args=st.callback_args, checkpoint_layers=st.layers)
            res["predicted"] = predict_side(plan_arch, tuner, plan_frames, st, gb, max_length)
            if not res.get("failed"):
                if profile_step:  # the profiled step is not timed
                    res["step_ends"], res["samples"], res["tokens"] = (res["step_ends"][:-1], res["samples"][:-1],
                                                                       res["tokens"][:-1])
                tps = sum(res["tokens"]) / max(1, sum(res["samples"]))
                res = summarise(res, args.warmup, flops_per_token(arch, tuner, tps, frames), peak)
            pair[side] = res
            print(f"[{name}] " + (f"{res['samples_per_s']:.2f} samples/s, {res['s_per_step']:.2f} s/step, "
                                  f"peak {res['peak_alloc_gib'] or 0:.1f} GiB, wall {res['wall_s']:.0f}s"
                                  if not res.get("failed") else "failed"), flush=True)
            if res.get("profile"):
                print_profile(name, res["profile"])
            if args.out:  # partial results survive a run cut short by a time limit
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"partial": True, "rows": rows + [
                    {"config": cfg, "arch": arch, "tuner": tuner, **pair}]}, indent=1))
        rows.append({"config": cfg, "arch": arch, "tuner": tuner, **pair})
        if args.out:  # partial results survive a run cut short by a time limit
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"partial": True, "rows": rows}, indent=1))
    print_table(rows, [x for x in sides if any(x in r for r in rows)])
    result = {"device": args.device, "tiny": tiny, "mixed": args.mixed, "video_load_backend": env.get("VIDEO_LOAD_BACKEND", "pyav"), "frames": frames, "global_batch": gb, "steps": steps,
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
else:  # imported by ms-swift through --external_plugins: register the timing callback
    try:
        _register_timer_callback()
    except ImportError:
        pass
