"""Predicted training time for one setup: a small cost model fitted to measured runs.

The planner (``plan.py``) picks, among the settings that fit, the one this model says is fastest.
It is deliberately simple, a few constants fitted (``benchmarks/fit_speed.py``) to the runs in
``docs/benchmarks.md`` (one H100/H200, ms-swift 4.6, 16-frame samples of 4,435 tokens), and it only has
to rank settings of one model on one GPU type correctly, not to predict absolute times elsewhere:

* **GPU time per sample** = matmul FLOPs / (peak x ``MATMUL_EFF`` x hidden / (hidden + ``MATMUL_HIDDEN``))
  + element-wise time (a narrow LLM's GEMMs reach less of the peak).  FLOPs
  count what the GPU really does: the LLM's forward, its backward (weight gradients only when the
  weights train), the forward again for each checkpointed layer, causal attention, the frozen ViT's
  forward and the answer tokens' LM head.  Element-wise time (norms, RoPE, SwiGLU, LoRA's casts and
  dropout, residuals) is taken proportional to the bytes each layer keeps for backward
  (``memory.layer_activation_bytes``) over the memory bandwidth, times a fitted number of passes:
  fewer when the layers are compiled (fused; the fit puts this at 0, their share being absorbed in
  ``MATMUL_EFF``), more when eager.  LoRA's GPU time is that times ``GPU_LORA_FACTOR`` (its small A/B
  matmuls, dropout and casts on every linear).
* **Host time per micro-batch** = a fitted cost per repeated layer (ViT + LLM: Python, autograd and
  kernel launches; far less when compiled) + a fitted cost per sample (collation, copies; it fits to 0:
  the loader's workers collate while the GPU runs, and 1B runs as fast at micro-batch 4 as at 8).
* A micro-batch takes the larger of the two: the host queues kernels while the GPU runs them, so a
  small model at micro-batch 1 waits for the host and a larger micro-batch is nearly free; a large
  model is GPU-bound and gains nothing from it.
* Per optimizer step: the optimizer's pass over its states (full fine-tuning), the gradient
  all-reduce between GPUs, and the ZeRO stage's own cost (``STAGE_FACTOR``, from
  ``benchmarks/recipe_memory.py``'s step times: ZeRO-2 1.15x ZeRO-0 on one GPU, ZeRO-3 2.7-5x ZeRO-2
  on four; CPU offload is slower again).  Stages where the layers are not compiled (ZeRO-2 and
  ZeRO-3: see docs/recipes.md) are timed eager.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .arch import ModelArch
from .memory import BF16, FP32, TrainSetup, layer_activation_bytes, trainable_params

PEAK_TFLOPS = 989.0  # dense bf16, H100 / H200 SXM (the GPUs the constants were fitted on)
BANDWIDTH = 3.35e12  # bytes/s, H100 SXM HBM3 (H200: 4.8e12; the fit absorbs the difference)
BUS_BANDWIDTH = 300e9  # bytes/s, NCCL all-reduce bus bandwidth between GPUs of one host (measured 329-361)
# ivl3_compile runs with no DeepSpeed and ZeRO-1, where it was verified (one GPU, DDP, ZeRO-1; 1.4x samples/s at
# no more memory on one H200); recipe/config.py refuses ZeRO-3 (weights gathered inside each layer); ZeRO-2 is
# not verified yet, so its recipes leave it to the user (docs/recipes.md)
COMPILED_STAGES = (0, 1)
STAGE_FACTOR = {0: 1.0, 1: 1.0, 2: 1.15, 3: 3.0}
OFFLOAD_FACTOR = 2.0

# Fitted (least squares on log samples/s) to the 31 runs of FIT_ROWS below (docs/benchmarks.md, "Planner"):
# `python benchmarks/fit_speed.py` refits and prints every row.  23 rows within 7 %; 6 of the other 8 are the
# host-bound 1B rows at micro-batch 1 (9-33 %): the same native setups ran 1.4-1.5x faster on the H100 runs' hosts
# (4.54-4.74, 7.55-8.07 samples/s) than on the H200 runs' (3.07, 5.50), and one set of constants cannot be close to
# both (max error 32.8 %, native 1B LoRA on the H200 host).  The GPU-bound rows agree across the two GPUs (8B LoRA
# 2.90 vs 2.96).  Rows at micro-batch > 1 measured with SDPA's padding mask (before recipe/row_attention.py) are not
# in the fit: no plan runs that way now and the model has no term for it.  The share of peak falls with the LLM's
# width: 0.58 at 8B (3,584 wide), 0.42 at 1B (896), as 8B LoRA's and 1B full's measured MFU say (43-46 %, 42 %).
# HOST_PER_SAMPLE fits to 0 since 1B full was measured at micro-batch 2, 4 and 8 (16.70, 17.47, 17.89 samples/s:
# flat, GPU-bound from micro-batch 2 on): a micro-batch's host time is its layers' launches, not its samples, so 1B
# at micro-batch 8 is labelled GPU-bound, as its profile says (3 % idle).
MATMUL_EFF = 0.672  # share of peak the model's matmuls reach (attention included) ...
MATMUL_HIDDEN = 527.0  # ... times hidden / (hidden + this): narrow LLMs' GEMMs reach less (1B's is 896 wide)
PASSES = {True: 0.0, False: 8.85}  # element-wise passes over each saved byte: compiled (fits to 0: absorbed), eager
HOST_PER_LAYER = {True: 2.68e-3, False: 2.92e-3}  # host s per repeated layer per micro-batch: compiled, eager
HOST_PER_SAMPLE = 0.0  # host s per sample in a micro-batch
HOST_LORA_FACTOR = 1.75  # LoRA adds modules (A, B, dropout) to every linear: more host work per layer
GPU_LORA_FACTOR = 1.36  # ... and GPU work: small A/B GEMMs, dropout, casts (8B full eager outruns 8B LoRA eager)
# Not fitted (no MPO run in FIT_ROWS yet): a preference step adds the reference model's forward, about a third
# of a forward + backward's kernel launches; chosen and rejected share one batch, so they add no launches
REFERENCE_HOST = {"mpo": 4 / 3}


@dataclass(frozen=True)
class StepTime:
    """Predicted seconds; ``samples_per_s`` is for all GPUs together."""

    gpu_s: float  # GPU time of one micro-batch
    host_s: float  # host time of one micro-batch
    micro_s: float  # one micro-batch: the larger of the two
    step_s: float  # one optimizer step (all micro-batches, optimizer, communication)
    samples_per_s: float
    compiled: bool

    @property
    def bound(self) -> str:
        return "GPU" if self.gpu_s >= self.host_s else "host"


def flops_per_sample(arch: ModelArch, setup: TrainSetup) -> float:
    """FLOPs the GPU does for one sample, recompute included."""
    t, v = arch.text, arch.vision
    tokens = setup.seq_len
    n_llm = t.layers * sum(i * o for i, o in t.linear_shapes())
    attn_fwd = 2.0 * tokens * tokens * t.q_width * t.layers  # QK^T and AV, causal
    fwd = 2.0 * n_llm * tokens + attn_fwd
    train_weights = setup.tuner == "full"
    bwd = (4.0 if train_weights else 2.0) * n_llm * tokens + 2.0 * attn_fwd
    recompute = fwd * setup.checkpointed(t.layers) / t.layers
    head = 2.0 * t.vocab * t.hidden * min(setup.label_tokens + 1, tokens) * 3
    patches = setup.frames * setup.tiles_per_frame * v.tokens_per_tile
    n_vit = v.layers * (4 * v.hidden * v.hidden + 2 * v.hidden * v.ffn)
    vit = 2.0 * n_vit * patches + 4.0 * v.layers * v.hidden * v.tokens_per_tile * patches
    seqs = setup.sequences  # a preference pair: the LLM runs chosen and rejected, the ViT once per forward
    total = seqs * (fwd + bwd + recompute + head) + vit
    if setup.stage == "mpo":  # the reference forward: both sequences again, no backward, no recompute
        total += seqs * (fwd + head / 3) + vit
    return total


def gpu_seconds_per_sample(arch: ModelArch, setup: TrainSetup, compiled: bool) -> float:
    t = arch.text
    efficiency = MATMUL_EFF * t.hidden / (t.hidden + MATMUL_HIDDEN)
    matmul = flops_per_sample(arch, setup) / (PEAK_TFLOPS * 1e12 * efficiency)
    eager_setup = TrainSetup(**{**setup.__dict__, "compiled": False})
    saved = layer_activation_bytes(arch, eager_setup, setup.zero > 0) * setup.seq_len * setup.sequences * t.layers
    # element-wise work of a recomputed layer: its forward again (about half of forward + backward)
    redo = 1 + 0.5 * setup.checkpointed(t.layers) / t.layers
    lora = GPU_LORA_FACTOR if setup.tuner == "lora" else 1.0
    return (matmul + PASSES[compiled] * saved * redo / BANDWIDTH) * lora


def optimizer_seconds(arch: ModelArch, setup: TrainSetup) -> float:
    """One optimizer step over this rank's share of the states (read and write weights, grads, 2 states)."""
    p = trainable_params(arch, setup)
    per = (BF16 * 3 + BF16 * 2) if setup.zero == 0 else (FP32 * 4 + BF16 * 2)
    share = 1 if setup.zero == 0 else setup.world
    return 2.0 * p * per / share / BANDWIDTH


def comm_seconds(arch: ModelArch, setup: TrainSetup) -> float:
    """Gradient all-reduce (ring: twice the bytes) once per optimizer step, between GPUs."""
    if setup.world == 1:
        return 0.0
    grads = trainable_params(arch, setup) * (BF16 if setup.zero or setup.tuner == "full" else FP32)
    return 2.0 * grads * (setup.world - 1) / setup.world / BUS_BANDWIDTH


def compiles(setup: TrainSetup) -> bool:
    """Whether a run of ``setup`` gets compiled layers (``ivl3_compile``)."""
    # preference training (swift rlhf) runs eager: ivl3_compile is verified with swift sft only
    return setup.zero in COMPILED_STAGES and not setup.offload and setup.stage == "sft"


def step_time(arch: ModelArch, setup: TrainSetup, grad_accum: int, compiled: Optional[bool] = None) -> StepTime:
    """Predicted time of one optimizer step of ``setup`` with ``grad_accum`` micro-batches
    (``compiled``: whether the layers are compiled; default: as the planner's recipes do)."""
    compiled = compiles(setup) if compiled is None else compiled
    stage = STAGE_FACTOR[setup.zero] * (OFFLOAD_FACTOR if setup.offload else 1.0)
    gpu = gpu_seconds_per_sample(arch, setup, compiled) * setup.micro_batch * stage
    layers = arch.text.layers + arch.vision.layers
    lora = HOST_LORA_FACTOR if setup.tuner == "lora" else 1.0
    host = HOST_PER_LAYER[compiled] * layers * lora * stage * REFERENCE_HOST.get(setup.stage, 1.0) \
        + HOST_PER_SAMPLE * setup.micro_batch
    micro = max(gpu, host)
    step = micro * grad_accum + optimizer_seconds(arch, setup) + comm_seconds(arch, setup)
    samples = setup.micro_batch * grad_accum * setup.world
    return StepTime(gpu_s=gpu, host_s=host, micro_s=micro, step_s=step, samples_per_s=samples / step,
                    compiled=compiled)


def _row(size, tuner, micro_batch, checkpoint_layers, compiled, samples_per_s, source):
    return dict(size=size, tuner=tuner, micro_batch=micro_batch, checkpoint_layers=checkpoint_layers,
                compiled=compiled, samples_per_s=samples_per_s, source=source)


# The runs the constants above were fitted to: ms-swift 4.6 on one H200 (then one H100, rows marked so),
# 16-frame samples (4,435 tokens), global batch 8, LoRA r8 (docs/benchmarks.md; "#18" = the earlier
# measurements).
FIT_ROWS = [
    _row("8B", "lora", 1, 28, True, 2.22, "fourth session, ours1 compiled (2.25, 2.25) and #18 (2.20)"),
    _row("8B", "lora", 1, 0, True, 2.90, "#18: compiled, checkpointing off"),
    _row("8B", "lora", 1, 28, False, 1.61, "native, every session"),
    _row("8B", "lora", 1, 0, False, 2.20, "#18: native without checkpointing"),
    _row("1B", "lora", 1, 24, True, 4.52, "fourth session, ours1 compiled (4.41, 4.63)"),
    _row("1B", "lora", 1, 24, False, 3.07, "native (2.80-3.38)"),
    _row("1B", "full", 1, 24, True, 7.05, "fourth session, ours1 compiled (7.03, 7.08)"),
    _row("1B", "full", 1, 24, False, 5.50, "native (4.85-5.98)"),
    # one H100 (same bf16 peak), 2026-12-06; the 8B model has an untied lm_head as the released one does
    _row("8B", "lora", 1, 0, True, 2.96, "H100 plan (benchmarks/results/gpu_train_h100_8b_lora_plan.json)"),
    _row("8B", "lora", 1, 28, False, 1.49, "H100 native, same run"),
    # 1B at micro-batch 8 as the plans run now: the LLM's attention skips padding, the ViT's kernels of
    # recipe/patch_conv.py and vit_mlp.py
    _row("1B", "lora", 8, 0, True, 14.28, "H100 plan (gpu_train_h100_1b_lora_plan_run3.json)"),
    _row("1B", "lora", 1, 24, False, 4.54, "H100 native, same run"),
    _row("1B", "full", 8, 0, True, 17.62, "H100 plan (gpu_train_h100_1b_full_vit_kernels.json)"),
    _row("1B", "full", 1, 24, False, 7.80, "H100 native (gpu_train_h100_1b_full_cat.json; 5.35 on the slow host "
         "of the run above)"),
    _row("8B", "full", 1, 28, False, 1.83, "H100 native (gpu_train_h100_8b_full.json)"),
    _row("8B", "full", 1, 14, True, 2.42, "H100 plan, 14 of 28 layers checkpointed, same run"),
    _row("8B", "full", 1, 13, True, 2.44, "H100 plan for 80 GiB, 13 of 28, same run"),
    # one H100, 2026-12-07: the benchmark's timer no longer waits for the GPU each micro-batch, and the compiled
    # sides run host_ahead (hosts/swift/host_ahead.py); 1B full at micro-batch 2 and 4 (planner_gpu.sh sweep)
    _row("8B", "lora", 1, 0, True, 3.23, "H100 plan (gpu_train_h100_8b_lora_timer_fix.json)"),
    _row("8B", "lora", 1, 28, False, 1.44, "H100 native (gpu_train_h100_8b_lora_native_timer_fix.json)"),
    _row("1B", "full", 8, 0, True, 17.89, "H100 plan (gpu_train_h100_1b_full_timer_fix.json)"),
    _row("1B", "full", 1, 24, False, 7.55, "H100 native, same run"),
    _row("1B", "full", 2, 0, True, 16.70, "H100, micro-batch 2 x 4 (gpu_train_h100_1b_full_mb2.json)"),
    _row("1B", "full", 4, 0, True, 17.47, "H100, micro-batch 4 x 2 (gpu_train_h100_1b_full_mb4.json)"),
    # one H100, 2026-12-07, three runs of the plans as ivl3 plan makes them now (1B at micro-batch 4 x 2)
    _row("8B", "lora", 1, 0, True, 3.24, "H100 plan (gpu_train_h100_8b_lora_same_run.json)"),
    _row("8B", "lora", 1, 28, False, 1.48, "H100 native, same run"),
    _row("1B", "lora", 4, 0, True, 15.25, "H100 plan (gpu_train_h100_1b_lora_mb4_plan.json)"),
    _row("1B", "lora", 1, 24, False, 4.74, "H100 native, same run"),
    _row("1B", "full", 4, 0, True, 17.93, "H100 plan (gpu_train_h100_1b_full_mb4_plan.json)"),
    _row("1B", "full", 1, 24, False, 8.07, "H100 native, same run"),
    _row("8B", "full", 1, 9, True, 2.57, "H100 plan, 9 of 28 layers checkpointed (gpu_train_h100_8b_full_plan9.json)"),
    _row("8B", "full", 1, 28, False, 1.82, "H100 native, same run"),
]


def _gpu_row(size, tuner, micro_batch, checkpoint_layers, kernel_s, source):
    return dict(size=size, tuner=tuner, micro_batch=micro_batch, checkpoint_layers=checkpoint_layers,
                compiled=True, kernel_s=kernel_s, source=source)


# The GPU's own time for one optimizer step of some FIT_ROWS runs: the summed kernel time of the step profiled
# with torch.profiler (gpu_train.py --torch-profile).  Not fitted: benchmarks/fit_speed.py prints them beside the
# model's GPU term and its bound (all GPU-bound, as the profiles say; the model's GPU term is 3-10 % above the
# kernel time, which leaves out the GPU's idle gaps).
GPU_ROWS = [
    _gpu_row("8B", "lora", 1, 0, 2.377, "H100 plan, profiled step (gpu_train_h100_8b_lora_plan.json)"),
    _gpu_row("1B", "lora", 8, 0, 0.516, "H100 plan, profiled step (gpu_train_h100_1b_lora_plan_run3.json)"),
    _gpu_row("1B", "full", 8, 0, 0.429, "H100 plan, profiled step (gpu_train_h100_1b_full_vit_kernels.json)"),
    _gpu_row("8B", "lora", 1, 0, 2.399, "H100 plan, profiled step (gpu_train_h100_8b_lora_timer_fix.json)"),
    _gpu_row("1B", "full", 8, 0, 0.437, "H100 plan, profiled step (gpu_train_h100_1b_full_timer_fix.json)"),
    _gpu_row("8B", "lora", 1, 0, 2.398, "H100 plan, profiled step (gpu_train_h100_8b_lora_same_run.json)"),
    _gpu_row("1B", "lora", 4, 0, 0.493, "H100 plan, profiled step (gpu_train_h100_1b_lora_mb4_plan.json)"),
    _gpu_row("1B", "full", 4, 0, 0.431, "H100 plan, profiled step (gpu_train_h100_1b_full_mb4_plan.json)"),
]
