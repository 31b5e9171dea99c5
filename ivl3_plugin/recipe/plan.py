"""The planner: from a model and the GPUs at hand to tuner, ZeRO stage, checkpointing and batch split.

Plain functions over :mod:`.memory` (peak GPU memory) and :mod:`.speed` (step time), so the choice
is testable without GPUs.  Two objectives:

* ``fastest`` (``ivl3 plan``, ``ivl3 train --plan``): among every setting that fits the budget --
  ZeRO stage, micro-batch, and gradient checkpointing on all, none or only the first k of the LLM's
  layers -- the one the cost model predicts fastest; within 2 % of each other, the one with less
  memory.  For each stage and micro-batch only the fewest checkpointed layers that fit are tried
  (recompute only costs time).  The tuner is not a speed choice: with it left open, full
  fine-tuning wins if any GPU-only setting fits, then LoRA; CPU offload only if nothing else fits.
* ``largest-batch`` (the shipped recipes, ``catalog.py``): the lowest ZeRO stage that fits with
  the checkpointing asked for, then the largest per-device batch up to ``max_micro_batch``.

Gradient accumulation always makes up the global batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple, Union

from ..shared.layout import DEFAULT_NUM_FRAMES, TILE_TOKENS
from .arch import ModelArch, closest_size, matching_size, resolve_arch
from .config import deepspeed_name, grad_accum_for, recipe_name
from .memory import GIB, STAGES, MemoryEstimate, TrainSetup, estimate
from .speed import StepTime, step_time

DEFAULT_HEADROOM = 0.9  # share of GPU memory a plan may fill (allocator fragmentation, CUDA context)
MAX_AUTO_MICRO_BATCH = 64
TIE = 0.02  # predicted times within 2 % count as equal: the setting with less memory wins
OBJECTIVES = ("fastest", "largest-batch")
Stage = Tuple[int, bool]  # (ZeRO stage, offload)


@dataclass(frozen=True)
class PlanRequest:
    model: str = "8B"  # size ("8B") or a model directory
    gpus_per_node: int = 8
    nodes: int = 1
    gpu_memory_gib: float = 80.0
    frames: int = DEFAULT_NUM_FRAMES
    max_length: int = 16384
    tuner: Optional[str] = None  # None: full if it fits, else LoRA
    global_batch: int = 128
    max_micro_batch: Optional[int] = 4  # the official scripts' per-device batch for <= 14B; None: up to the global batch
    text_tokens: int = 256
    label_tokens: int = 128
    lora_rank: int = 16
    lora_dropout: float = 0.05
    checkpointing: Union[str, int] = "all"  # "auto" (the planner chooses), "all", "none", or a number of LLM layers
    headroom: float = DEFAULT_HEADROOM
    stages: Optional[Sequence[Stage]] = None  # None: default order for the tuner and GPU count
    objective: str = "largest-batch"  # or "fastest"
    stage: str = "sft"  # "mpo": preference pairs with a reference model (memory.py)
    length_group: bool = False  # mixed-length data: group micro-batches by length (ivl3_length_group) when > 1

    @property
    def world(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def grad_checkpointing(self) -> bool:  # the older boolean view
        return self.checkpointing != "none" and self.checkpointing != 0


@dataclass
class Option:
    """One setting the planner weighed: what it is, its predicted peak memory and time."""

    tuner: str
    zero: int
    offload: bool
    micro_batch: int
    grad_accum: int
    checkpoint_layers: int
    layers: int
    memory: MemoryEstimate
    time: StepTime

    @property
    def deepspeed(self) -> Optional[str]:
        return deepspeed_name(self.zero, self.offload)

    @property
    def checkpointing(self) -> str:
        if self.checkpoint_layers >= self.layers:
            return f"all {self.layers} layers"
        return "off" if self.checkpoint_layers == 0 else f"{self.checkpoint_layers} of {self.layers} layers"

    def describe(self) -> str:
        return (f"{self.tuner}, {self.deepspeed or 'no deepspeed'}, micro-batch {self.micro_batch} x accumulation "
                f"{self.grad_accum}, checkpointing {self.checkpointing}")


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
    checkpoint_layers: int = 0
    time: Optional[StepTime] = None
    runner_up: Optional[Option] = None
    options: List[Option] = field(default_factory=list)  # every fitting setting weighed, fastest first

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.request.world * self.grad_accum

    @property
    def chosen_on_memory(self) -> bool:
        """True when the runner-up is predicted as fast (within ``TIE``) and the plan won by taking less memory:
        the user sees why a same-speed setting was passed over."""
        r = self.runner_up
        return bool(r and self.time and r.time.samples_per_s >= self.time.samples_per_s
                    and r.memory.total > self.memory.total)

    @property
    def deepspeed(self) -> Optional[str]:
        """ms-swift's ``--deepspeed`` name, None for plain DDP / one GPU."""
        return deepspeed_name(self.zero, self.offload)

    @property
    def size(self) -> str:
        """The released size whose architecture this is ("8B"), else the closest one by parameters."""
        return matching_size(self.arch) or closest_size(self.arch)

    @property
    def recipe_name(self) -> str:
        """The shipped recipe for this size and tuner (for a model folder of another architecture: the
        closest size's, which ``exact_recipe`` says)."""
        return recipe_name(self.size, self.tuner, self.request.stage)

    @property
    def exact_recipe(self) -> bool:
        return matching_size(self.arch) is not None

    @property
    def budget_bytes(self) -> float:
        return self.request.gpu_memory_gib * GIB * self.request.headroom

    @property
    def layers(self) -> int:
        return self.arch.text.layers

    @property
    def checkpointing(self) -> str:
        return Option(self.tuner, self.zero, self.offload, self.micro_batch, self.grad_accum, self.checkpoint_layers,
                      self.layers, self.memory, self.time).checkpointing

    @property
    def compiled(self) -> bool:
        return self.time.compiled if self.time else self.zero in (0, 1) and not self.offload


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


def pinned_layers(req: PlanRequest, layers: int) -> Optional[int]:
    """The checkpointed-layer count the request fixes, None when the planner chooses."""
    c = req.checkpointing
    if c in ("auto", None):
        return None
    if c in ("all", True):
        return layers
    if c in ("none", False):
        return 0
    return min(int(c), layers)


def setup_for(req: PlanRequest, tuner: str, zero: int, offload: bool, micro_batch: int,
              checkpoint_layers: Optional[int] = None) -> TrainSetup:
    if checkpoint_layers is None:
        checkpoint_layers = None if req.checkpointing in ("auto", None) else pinned_layers(req, 10 ** 6)
    return TrainSetup(tuner=tuner, zero=zero, offload=offload, world=req.world, micro_batch=micro_batch,
                      frames=req.frames, text_tokens=req.text_tokens, label_tokens=req.label_tokens,
                      max_length=req.max_length, grad_checkpointing=checkpoint_layers != 0,
                      checkpoint_layers=checkpoint_layers, lora_rank=req.lora_rank, lora_dropout=req.lora_dropout,
                      compiled=zero in (0, 1) and not offload and req.stage == "sft", stage=req.stage)


def check_request(req: PlanRequest) -> None:
    """ValueError naming the field for a request no plan can answer (0 GPUs, NaN memory, headroom 5)."""
    for name in ("gpus_per_node", "nodes", "frames", "global_batch"):
        if int(getattr(req, name)) < 1:
            raise ValueError(f"{name}: must be at least 1, got {getattr(req, name)!r}")
    if req.max_micro_batch is not None and int(req.max_micro_batch) < 1:
        raise ValueError(f"max_micro_batch: must be at least 1, got {req.max_micro_batch!r}")
    if not (isinstance(req.gpu_memory_gib, (int, float)) and math.isfinite(req.gpu_memory_gib)
            and req.gpu_memory_gib > 0):
        raise ValueError(f"gpu_memory_gib: must be a positive number of GiB, got {req.gpu_memory_gib!r}")
    if not (math.isfinite(req.headroom) and 0 < req.headroom <= 1):
        raise ValueError(f"headroom: the share of GPU memory a plan may use, in (0, 1], got {req.headroom!r}")
    if req.objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {req.objective!r}")
    if req.stage not in STAGES:
        raise ValueError(f"stage: expected one of {STAGES}, got {req.stage!r}")
    c = req.checkpointing
    if not (c in ("auto", "all", "none", None, True, False) or (isinstance(c, int) and c >= 0)):
        raise ValueError(f"checkpointing: expected auto, all, none or a number of layers >= 0, got {c!r}")


def micro_batches(req: PlanRequest) -> List[int]:
    cap = max(1, req.global_batch // req.world)
    if req.max_micro_batch is not None:
        cap = min(cap, int(req.max_micro_batch))
    elif req.objective == "fastest":
        cap = min(cap, MAX_AUTO_MICRO_BATCH)
    out, mb = [], 1
    while mb <= cap:
        out.append(mb)
        mb *= 2
    return out


def option(arch: ModelArch, req: PlanRequest, tuner: str, zero: int, offload: bool, mb: int, k: int) -> Option:
    setup = setup_for(req, tuner, zero, offload, mb, k)
    accum = grad_accum_for(req.global_batch, mb, req.world)
    return Option(tuner, zero, offload, mb, accum, k, arch.text.layers, estimate(arch, setup),
                  step_time(arch, setup, accum))


def fewest_layers_that_fit(arch: ModelArch, req: PlanRequest, tuner: str, zero: int, offload: bool, mb: int,
                           budget: float) -> Optional[int]:
    """Memory falls as layers are checkpointed; the fewest that fit (binary search), None if none do."""
    layers = arch.text.layers

    def fits(k: int) -> bool:
        return estimate(arch, setup_for(req, tuner, zero, offload, mb, k)).total <= budget

    if not fits(layers):
        return None
    lo, hi = 0, layers
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def fastest_options(arch: ModelArch, req: PlanRequest, tuner: str, stages: List[Stage], budget: float) -> List[Option]:
    pinned = pinned_layers(req, arch.text.layers)
    out = []
    for zero, offload in stages:
        for mb in micro_batches(req):
            if pinned is None:
                k = fewest_layers_that_fit(arch, req, tuner, zero, offload, mb, budget)
                if k is None:
                    break  # a larger micro-batch will not fit either
            else:
                k = pinned
            opt = option(arch, req, tuner, zero, offload, mb, k)
            if opt.memory.total > budget:
                break
            out.append(opt)
    return sorted(out, key=lambda o: (-o.time.samples_per_s, o.memory.total))


def pick(options: List[Option]) -> Tuple[Option, Optional[Option]]:
    """The fastest; among those within ``TIE`` of it, the one with the least memory; and the runner-up."""
    best_speed = options[0].time.samples_per_s
    close = [o for o in options if o.time.samples_per_s >= best_speed * (1 - TIE)]
    chosen = min(close, key=lambda o: o.memory.total)
    rest = [o for o in options if o is not chosen]
    return chosen, (rest[0] if rest else None)


def make_plan(req: PlanRequest, arch: Optional[ModelArch] = None) -> Plan:
    """Choose tuner, stage, checkpointing and batch split for ``req``; ``fits`` is False when nothing fits."""
    check_request(req)
    arch = arch or resolve_arch(req.model)
    tuners = [req.tuner] if req.tuner else ["full", "lora"]
    budget = req.gpu_memory_gib * GIB * req.headroom
    layers = arch.text.layers
    first_k = pinned_layers(req, layers)
    first_k = layers if first_k is None else first_k
    alternatives: List[Tuple[str, int, bool, float]] = []
    best: Optional[Plan] = None
    for tuner, zero, offload in candidates(req, tuners):
        one = option(arch, req, tuner, zero, offload, 1, first_k)
        alternatives.append((tuner, zero, offload, one.memory.total / GIB))
    if req.objective == "fastest":
        for offloaded in (False, True):
            for tuner in tuners:
                stages = [(z, o) for t, z, o in candidates(req, [tuner]) if o == offloaded]
                options = fastest_options(arch, req, tuner, stages, budget)
                if options:
                    chosen, runner_up = pick(options)
                    best = plan_from(arch, req, chosen, True)
                    best.runner_up, best.options = runner_up, options
                    break
            if best:
                break
    else:
        for tuner, zero, offload in candidates(req, tuners):
            if option(arch, req, tuner, zero, offload, 1, first_k).memory.total > budget:
                continue
            fitting = [o for o in (option(arch, req, tuner, zero, offload, mb, first_k) for mb in micro_batches(req))
                       if o.memory.total <= budget]
            best = plan_from(arch, req, fitting[-1], True)
            break
    if best is None:  # nothing fits: report the smallest so the user sees by how much
        tuner, zero, offload, _ = min(alternatives, key=lambda a: a[3])
        smallest = option(arch, req, tuner, zero, offload, 1, layers if first_k is None else first_k)
        best = plan_from(arch, req, smallest, False)
        best.notes.append(f"does not fit: needs {smallest.memory.total / GIB:.1f} GiB per GPU, budget "
                          f"{budget / GIB:.1f} GiB ({req.headroom:.0%} of {req.gpu_memory_gib:g}); add GPUs, use "
                          "fewer frames or a smaller model")
    best.alternatives = alternatives
    if best.global_batch != req.global_batch:
        best.notes.append(f"global batch {req.global_batch} is not a multiple of {best.micro_batch} x {req.world} "
                          f"GPUs: using {best.global_batch}")
    if req.max_length and req.frames * TILE_TOKENS + req.text_tokens > req.max_length:
        best.notes.append(f"{req.frames} frames x {TILE_TOKENS} tokens + {req.text_tokens} text tokens exceed max_length "
                          f"{req.max_length}: samples would be cut or refused")
    return best


def plan_from(arch: ModelArch, req: PlanRequest, o: Option, fits: bool) -> Plan:
    return Plan(arch, req, o.tuner, o.zero, o.offload, o.micro_batch, o.grad_accum, o.memory, fits,
                checkpoint_layers=o.checkpoint_layers, time=o.time)


def breakdown_rows(mem: MemoryEstimate) -> List[Tuple[str, float]]:
    """(label, GiB) lines for printing, in the order memory is usually spent."""
    g = mem.gib()
    rows = [("weights (LLM + projector)", g["weights"]), ("vision tower", g["vision_tower"]),
            ("gradients", g["gradients"]), ("optimizer states", g["optimizer"]),
            ("activations (as planned)", g["activations"]), ("activations (checkpointing flipped)",
                                                             g["activations_other"]),
            ("logits (answer tokens)", g["logits"])]
    if mem.reference:
        rows.append(("reference model (copy + its logits)", g["reference"]))
    return rows + [("optimizer step transient", g["step_transient"]),
                   ("comm buffers / gathered params", g["buffers"]), ("predicted peak", g["total"])]


def with_request(plan: Plan, **changes) -> Plan:
    return make_plan(replace(plan.request, **changes), plan.arch)
