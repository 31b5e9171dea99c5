"""The planner: from a model and the GPUs at hand to tuner, ZeRO stage and batch split.

Plain functions over :mod:`.memory`, so the choice is testable without GPUs:
the lowest ZeRO stage that fits wins (higher stages cost speed: ZeRO-3 ran
~8x slower than ZeRO-2 for InternVL3-1B on H200s), then the largest
per-device batch that still fits, then gradient accumulation to reach the
global batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

from .arch import ModelArch, resolve_arch
from .memory import GIB, MemoryEstimate, TrainSetup, estimate

DEFAULT_HEADROOM = 0.9  # share of GPU memory a plan may fill (allocator fragmentation, CUDA context)
Stage = Tuple[int, bool]  # (ZeRO stage, offload)


@dataclass(frozen=True)
class PlanRequest:
    model: str = "8B"  # size ("8B") or a model directory
    gpus_per_node: int = 8
    nodes: int = 1
    gpu_memory_gib: float = 80.0
    frames: int = 16
    max_length: int = 16384
    tuner: Optional[str] = None  # None: full if it fits, else LoRA
    global_batch: int = 128
    max_micro_batch: int = 4  # the official scripts' per-device batch for <= 14B
    text_tokens: int = 256
    label_tokens: int = 128
    lora_rank: int = 16
    grad_checkpointing: bool = True
    headroom: float = DEFAULT_HEADROOM
    stages: Optional[Sequence[Stage]] = None  # None: default order for the tuner and GPU count

    @property
    def world(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass
class Plan:
    arch: ModelArch
    request: PlanRequest
    tuner: str
    zero: int
    offload: bool
    micro_batch: int
    grad_accum: int
    memory: MemoryEstimate
    fits: bool
    alternatives: List[Tuple[str, int, bool, float]] = field(default_factory=list)  # (tuner, zero, offload, GiB)
    notes: List[str] = field(default_factory=list)

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.request.world * self.grad_accum

    @property
    def deepspeed(self) -> Optional[str]:
        """ms-swift's ``--deepspeed`` name, None for plain DDP / one GPU."""
        if self.zero == 0:
            return None
        return f"zero{self.zero}" + ("_offload" if self.offload else "")

    @property
    def recipe_name(self) -> str:
        size = self.arch.name.replace("InternVL3-", "").lower()
        return f"internvl3-{size}-{self.tuner}"

    @property
    def budget_bytes(self) -> float:
        return self.request.gpu_memory_gib * GIB * self.request.headroom


def default_stages(tuner: str, world: int) -> List[Stage]:
    """Stages in the order tried: cheapest in speed first."""
    if tuner == "lora":  # optimizer states are tiny: only sharding the weights (ZeRO-3) helps
        return [(0, False), (3, False), (3, True)] if world > 1 else [(0, False), (3, True)]
    if world == 1:
        return [(0, False), (2, True), (3, True)]
    return [(1, False), (2, False), (3, False), (2, True), (3, True)]


def candidates(req: PlanRequest, tuners: List[str]) -> List[Tuple[str, int, bool]]:
    """(tuner, stage, offload) in the order tried: every GPU-only setting before any CPU offload.

    CPU offload of a full fine-tune needs ~16 bytes of host RAM per parameter (1.2 TB for 78B),
    so with the tuner left open LoRA on GPUs beats full with offload.
    """
    out = []
    for offloaded in (False, True):
        for tuner in tuners:
            out += [(tuner, z, o) for z, o in (req.stages or default_stages(tuner, req.world)) if o == offloaded]
    return out


def setup_for(req: PlanRequest, tuner: str, zero: int, offload: bool, micro_batch: int) -> TrainSetup:
    return TrainSetup(tuner=tuner, zero=zero, offload=offload, world=req.world, micro_batch=micro_batch,
                      frames=req.frames, text_tokens=req.text_tokens, label_tokens=req.label_tokens,
                      max_length=req.max_length, grad_checkpointing=req.grad_checkpointing, lora_rank=req.lora_rank)


def grad_accum_for(global_batch: int, micro_batch: int, world: int) -> int:
    return max(1, math.ceil(global_batch / (micro_batch * world)))


def make_plan(req: PlanRequest, arch: Optional[ModelArch] = None) -> Plan:
    """Choose tuner, stage and batch split for ``req``; ``fits`` is False when nothing fits."""
    for name in ("gpus_per_node", "nodes", "frames", "global_batch", "max_micro_batch"):
        if int(getattr(req, name)) < 1:
            raise ValueError(f"{name}: must be at least 1, got {getattr(req, name)!r}")
    if req.gpu_memory_gib <= 0:
        raise ValueError(f"gpu_memory_gib: must be positive, got {req.gpu_memory_gib!r}")
    arch = arch or resolve_arch(req.model)
    tuners = [req.tuner] if req.tuner else ["full", "lora"]
    budget = req.gpu_memory_gib * GIB * req.headroom
    alternatives: List[Tuple[str, int, bool, float]] = []
    best: Optional[Plan] = None
    for tuner, zero, offload in candidates(req, tuners):
        one = estimate(arch, setup_for(req, tuner, zero, offload, 1))
        alternatives.append((tuner, zero, offload, one.total / GIB))
        if one.total > budget:
            continue
        micro = 1
        cap = min(req.max_micro_batch, max(1, req.global_batch // req.world))
        while micro * 2 <= cap and estimate(arch, setup_for(req, tuner, zero, offload, micro * 2)).total <= budget:
            micro *= 2
        mem = estimate(arch, setup_for(req, tuner, zero, offload, micro))
        best = Plan(arch, req, tuner, zero, offload, micro, grad_accum_for(req.global_batch, micro, req.world),
                    mem, True)
        break
    if best is None:  # nothing fits: report the smallest so the user sees by how much
        tuner, zero, offload, _ = min(alternatives, key=lambda a: a[3])
        mem = estimate(arch, setup_for(req, tuner, zero, offload, 1))
        best = Plan(arch, req, tuner, zero, offload, 1, grad_accum_for(req.global_batch, 1, req.world), mem, False)
        best.notes.append(f"does not fit: needs {mem.total / GIB:.1f} GiB per GPU, budget "
                          f"{budget / GIB:.1f} GiB ({req.headroom:.0%} of {req.gpu_memory_gib:g}); add GPUs, use "
                          "fewer frames or a smaller model")
    best.alternatives = alternatives
    if best.global_batch != req.global_batch:
        best.notes.append(f"global batch {req.global_batch} is not a multiple of {best.micro_batch} x {req.world} "
                          f"GPUs: using {best.global_batch}")
    if req.max_length and req.frames * 256 + req.text_tokens > req.max_length:
        best.notes.append(f"{req.frames} frames x 256 tokens + {req.text_tokens} text tokens exceed max_length "
                          f"{req.max_length}: samples would be cut or refused")
    return best


def breakdown_rows(mem: MemoryEstimate) -> List[Tuple[str, float]]:
    """(label, GiB) lines for printing, in the order memory is usually spent."""
    g = mem.gib()
    return [("weights (LLM + projector)", g["weights"]), ("vision tower", g["vision_tower"]),
            ("gradients", g["gradients"]), ("optimizer states", g["optimizer"]),
            ("activations (as planned)", g["activations"]), ("activations (checkpointing flipped)",
                                                             g["activations_other"]),
            ("logits (answer tokens)", g["logits"]), ("optimizer step transient", g["step_transient"]),
            ("comm buffers / gathered params", g["buffers"]), ("predicted peak", g["total"])]


def with_request(plan: Plan, **changes) -> Plan:
    return make_plan(replace(plan.request, **changes), plan.arch)
