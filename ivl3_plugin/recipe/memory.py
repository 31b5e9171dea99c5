"""Predicted peak GPU memory per rank for one training setup, broken down by cause.

The model follows what ms-swift 4.6 actually runs (checked in its sources):
bf16 weights; without DeepSpeed (``zero=0``) the torch AdamW keeps its two
states in the parameter dtype; with DeepSpeed ZeRO the optimizer keeps fp32
master weights plus two fp32 states (12 bytes per trainable parameter),
partitioned over ranks from stage 1, gradients partitioned from stage 2 and
weights from stage 3; gradient checkpointing on the LLM keeps one hidden
state per layer; logits are computed only for the answer tokens
(``use_logits_to_keep``, on by default with transformers 5; with several
samples per micro-batch only under left padding, which the SFT recipes and
``ivl3 train --plan`` set: right padding keeps every position from the
batch's earliest answer on, frames of longer clips included); the frozen
vision tower runs without storing activations.  ``benchmarks/recipe_memory.py``
measures the same setups on GPUs and prints the ratio to these figures.

``stage="mpo"`` is preference training (``swift rlhf --rlhf_type dpo``, MPO's losses): each sample
is a pair, so the policy forward holds the activations and answer logits of two sequences (chosen
+ rejected; the vision tower still runs once per pair, docs/preference-training.md), then a
reference forward without gradients over the same two sequences adds its logits on top; full
fine-tuning keeps a second, frozen copy of the weights as the reference model (sharded only at
ZeRO-3), LoRA's reference is the base model with its adapters switched off (no extra weights).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

from ..shared.layout import TILE_TOKENS
from .arch import ModelArch

GIB = 1024 ** 3
BF16 = 2
FP32 = 4
ZERO_STAGES = (0, 1, 2, 3)
STAGES = ("sft", "mpo")  # supervised fine-tuning; preference pairs (DPO with MPO's losses)
DS_REDUCE_BUCKET = 2e8  # elements: ms-swift's zero1/zero2.json reduce_bucket_size
DS_SUB_GROUP = 1e9  # elements: ms-swift's zero3.json sub_group_size
DS_Z3_REUSE = 1e9
DS_FIXED = 0.4 * 1024 ** 3  # bytes DeepSpeed's engine holds besides the modelled terms (measured 0.2-0.6 GiB)  # elements: ms-swift's zero3.json stage3_max_reuse_distance / stage3_max_live_parameters


@dataclass(frozen=True)
class TrainSetup:
    """What decides memory: tuner, ZeRO stage, parallelism and the shape of one sample."""

    tuner: str = "lora"  # "full" or "lora"
    zero: int = 0  # 0 = no DeepSpeed (torch AdamW, DDP when several GPUs)
    offload: bool = False  # ZeRO optimizer (and, at stage 3, parameter) offload to CPU
    world: int = 1  # GPUs in total (GPUs per node x nodes)
    micro_batch: int = 1
    frames: int = 16
    tiles_per_frame: int = 1
    text_tokens: int = 256  # prompt + answer tokens besides the image tokens
    label_tokens: int = 128  # answer tokens: the only ones with logits
    max_length: int = 0  # 0: no cap
    grad_checkpointing: bool = True
    checkpoint_layers: Optional[int] = None  # LLM layers checkpointed (the first k); None: all, or 0 without
    compiled: bool = False  # ivl3_compile: Inductor saves norms' inputs in bf16 and regenerates dropout masks
    autocast: bool = True  # ms-swift trains under bf16 autocast (a plain bf16 loop without it: False)
    lora_rank: int = 16
    lora_dropout: float = 0.05
    train_projector: bool = None  # default: True for full (official freeze_mlp False), False for LoRA
    train_vit: bool = False
    stage: str = "sft"  # "mpo": pairs with a reference model (see the module docstring)

    def __post_init__(self):
        if self.tuner not in ("full", "lora"):
            raise ValueError(f"tuner: expected 'full' or 'lora', got {self.tuner!r}")
        if self.stage not in STAGES:
            raise ValueError(f"stage: expected one of {STAGES}, got {self.stage!r}")
        if self.zero not in ZERO_STAGES:
            raise ValueError(f"zero: expected one of {ZERO_STAGES}, got {self.zero!r}")
        if self.offload and self.zero < 2:
            raise ValueError("offload: ZeRO offload needs zero stage 2 or 3")
        for name in ("world", "micro_batch", "frames", "tiles_per_frame"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)!r}")
        if self.train_projector is None:
            object.__setattr__(self, "train_projector", self.tuner == "full")
        if self.checkpoint_layers is not None and int(self.checkpoint_layers) < 0:
            raise ValueError(f"checkpoint_layers: must be 0 or more, got {self.checkpoint_layers!r}")

    def checkpointed(self, layers: int) -> int:
        """How many of the LLM's ``layers`` run under gradient checkpointing."""
        if self.checkpoint_layers is None:
            return layers if self.grad_checkpointing else 0
        return min(int(self.checkpoint_layers), layers)

    @property
    def sequences(self) -> int:
        """Sequences the LLM runs per sample: 2 for a preference pair (chosen + rejected)."""
        return 2 if self.stage == "mpo" else 1

    @property
    def has_reference_copy(self) -> bool:
        """Full-parameter preference training keeps a frozen copy of the weights as the reference model."""
        return self.stage == "mpo" and self.tuner == "full"

    @property
    def image_tokens(self) -> int:
        return self.frames * self.tiles_per_frame * TILE_TOKENS

    @property
    def seq_len(self) -> int:
        n = self.image_tokens + self.text_tokens
        return min(n, self.max_length) if self.max_length else n


@dataclass
class MemoryEstimate:
    """Bytes per GPU at the peak; ``total`` is what ``torch.cuda.max_memory_allocated`` should show."""

    weights: float  # LLM + projector (+ LoRA adapters)
    vision_tower: float  # ViT weights + its forward working set
    gradients: float
    optimizer: float
    activations: float  # with the chosen checkpointing setting
    activations_other: float  # the same with checkpointing flipped (for comparison)
    logits: float
    step_transient: float  # fp32 gradient partition DeepSpeed builds at optimizer.step()
    buffers: float  # communication buckets, ZeRO-3 gathered parameters
    total: float
    trainable_params: int
    seq_len: int
    host_offload: float = 0.0  # CPU memory one rank's offloaded states take (multiply by GPUs per node)
    reference: float = 0.0  # mpo: the frozen reference copy (full) and the reference forward's logits
    notes: Dict[str, str] = field(default_factory=dict)

    def gib(self) -> Dict[str, float]:
        return {k: (v / GIB if isinstance(v, float) else v) for k, v in asdict(self).items()
                if k not in ("trainable_params", "seq_len", "notes", "host_offload")}


def trainable_params(arch: ModelArch, setup: TrainSetup) -> int:
    n = arch.text.lora_params(setup.lora_rank) if setup.tuner == "lora" else arch.text.params()
    if setup.train_projector:
        n += arch.projector_params()
    if setup.train_vit:
        n += arch.vision.params()
    return n


def zero3_gathered_params(arch: ModelArch) -> float:
    """Parameters ZeRO-3 holds gathered (whole, bf16) at the peak, besides each rank's partition.

    DeepSpeed releases a gathered parameter after use only if it is not needed again within
    ``stage3_max_reuse_distance`` elements of upcoming modules.  With gradient checkpointing every LLM
    layer is needed again by its recompute in backward, so with ms-swift's 1e9 the whole model stays
    gathered up to about 1e9 parameters (measured on H200s: ``benchmarks/recipe_memory.py``).
    """
    p = arch.params()
    biggest = max(arch.text.embed_params(), max(i * o for i, o in arch.text.linear_shapes()))
    return float(max(biggest, min(sum(p.values()), DS_Z3_REUSE)))


def layer_activation_bytes(arch: ModelArch, setup: TrainSetup, deepspeed: bool) -> float:
    """Bytes per token one decoder layer keeps for backward (bf16, SDPA attention, SwiGLU MLP)."""
    t = arch.text
    h, q, kv, f = t.hidden, t.q_width, t.kv_width, t.ffn
    # RMSNorm keeps its fp32 upcast input eager; compiled (Inductor) it keeps the bf16 input and recomputes
    norm = BF16 if setup.compiled else FP32
    # Checked against what autograd saves (tests/test_plan_activations.py).  Trainable layer: RMSNorm
    # input + bf16 normalised input (for the weight) + bf16 output (for the linears), twice; q, k
    # after RoPE, v and the attention output; MLP gate, SiLU, up and product.
    per_token = 2 * (norm * h + 2 * BF16 * h) + BF16 * (2 * q + 2 * kv) + 4 * BF16 * f
    if setup.compiled:
        # Inductor's partitioner recomputes what is cheap: each norm keeps its bf16 input and normalised
        # output (not a second copy), the MLP its gate, up and their product (SiLU recomputed)
        per_token = 2 * (norm * h + BF16 * h) + BF16 * (2 * q + 2 * kv) + 3 * BF16 * f
    if setup.tuner == "lora":
        # frozen base: norms keep only their input, frozen linears keep no input, so the
        # MLP product is not saved either
        per_token = 2 * norm * h + BF16 * (2 * q + 2 * kv) + 3 * BF16 * f
    if setup.tuner == "lora" and setup.lora_rank:
        # peft casts each LoRA input to the adapter dtype and applies its own dropout before lora_A; what
        # lora_A keeps is that input in the dtype its matmul runs in: fp32 adapters in a plain bf16 loop, bf16
        # under autocast (ms-swift) or DeepSpeed (bf16 adapters).  Eager dropout keeps a 1-byte mask;
        # compiled, the mask is regenerated from the RNG seed in backward.
        dtype = BF16 if (deepspeed or setup.autocast) else FP32
        mask = 1 if setup.lora_dropout and not setup.compiled else 0
        per_token += (dtype + mask) * sum(i for i, _ in t.linear_shapes())
    return float(per_token)


def stored_stack_bytes(arch: ModelArch, layer: float, k: int) -> float:
    """Bytes per token the LLM's layers hold at the start of backward with the first ``k`` checkpointed.

    A checkpointed layer keeps only its bf16 input; the others keep ``layer`` bytes.  Backward runs the
    unchecked (later) layers first, so by the time a checkpointed layer is recomputed their activations
    are freed: with 0 < k < L the peak is at the start of backward; with every layer checkpointed it is
    one recomputed layer on top of all the inputs."""
    t = arch.text
    k = max(0, min(k, t.layers))
    stored = k * BF16 * t.hidden + (t.layers - k) * layer
    return stored + (layer if k == t.layers else 0.0)


def stored_activations(arch: ModelArch, setup: TrainSetup, layer: float, k: int, tokens: int) -> float:
    t, v = arch.text, arch.vision
    work = BF16 * (2 * t.hidden + 2 * t.ffn) + FP32 * t.hidden * 2  # gradients flowing through a layer + final norm
    act = tokens * (stored_stack_bytes(arch, layer, k) + work) + tokens * BF16 * t.hidden * 2  # + embeddings, merged
    if setup.train_projector:
        img = setup.micro_batch * setup.image_tokens
        act += img * BF16 * (4 * v.hidden * 2 + 2 * t.hidden)
    return float(act)


def estimate(arch: ModelArch, setup: TrainSetup) -> MemoryEstimate:
    """Predicted peak bytes per GPU for ``arch`` trained as ``setup``."""
    t, v = arch.text, arch.vision
    n = setup.world
    ds = setup.zero > 0
    p = arch.params()
    p_train = trainable_params(arch, setup)
    lora = setup.tuner == "lora"
    p_adapter = t.lora_params(setup.lora_rank) if lora else 0
    adapter_bytes = BF16 if ds else FP32  # DeepSpeed casts the whole module to bf16
    shard = n if setup.zero == 3 else 1
    if setup.zero == 3 and setup.offload:
        shard = float("inf")  # offload_param: partitions live in CPU memory, only gathered modules on the GPU

    weights = (BF16 * (p["llm"] + p["projector"]) + adapter_bytes * p_adapter) / shard
    tokens = setup.micro_batch * setup.sequences * setup.seq_len
    vit_tokens = setup.micro_batch * setup.frames * setup.tiles_per_frame * v.tokens_per_tile
    # the frozen ViT's forward working set (one layer's) is freed before the LLM's forward begins, so it
    # competes with the LLM's activations for the peak instead of adding to them; its output features stay
    vit_transient = vit_tokens * BF16 * (6 * v.hidden + 2 * v.ffn)
    vit_work = vit_tokens * BF16 * 2 * v.hidden
    if setup.train_vit:
        vit_work += v.layers * vit_tokens * BF16 * (8 * v.hidden + 2 * v.ffn)
    vision = BF16 * p["vision"] / shard + vit_work

    # Gradients: one per trainable parameter in its own dtype (bf16; fp32 adapters without DeepSpeed).
    grad_bytes = (p_train - p_adapter) * BF16 + p_adapter * adapter_bytes
    notes = {}
    if setup.zero == 0:
        gradients = grad_bytes * (2 if n > 1 else 1)  # DDP keeps a bucket copy of every gradient
        if n > 1:
            notes["gradients"] = "DDP bucket copy doubles gradients"
        optimizer = 2 * grad_bytes  # torch AdamW: exp_avg and exp_avg_sq in the parameter dtype
        step = 0.0
    else:
        part = n if setup.zero >= 2 else 1
        gradients = grad_bytes / part
        optimizer = 0.0 if setup.offload else 3 * FP32 * p_train / n
        step = 0.0 if setup.offload else FP32 * p_train / n
        if setup.zero == 3 and not setup.offload:
            # stage 3 flattens each optimizer sub-group's bf16 gradients, then casts to fp32, one group at a time
            step = (BF16 + FP32) * min(DS_SUB_GROUP, p_train / n)

    buffers = DS_FIXED if setup.zero else 0.0
    if setup.zero in (1, 2):
        buffers += BF16 * min(DS_REDUCE_BUCKET, p_train)
    if setup.zero == 3:
        buffers += BF16 * zero3_gathered_params(arch)
        buffers += BF16 * 0.9 * t.hidden ** 2  # prefetch bucket ("auto" = 0.9 hidden^2)
        buffers += BF16 * min(t.hidden ** 2, p_train)  # reduce bucket ("auto" = hidden^2)
        notes["buffers"] = "ZeRO-3 keeps up to stage3_max_reuse_distance (1e9) parameters gathered"

    layer = layer_activation_bytes(arch, setup, ds)
    k = setup.checkpointed(t.layers)
    other_k = 0 if k else t.layers  # the comparison line: checkpointing flipped (all <-> none)
    activations = stored_activations(arch, setup, layer, k, tokens)
    other = stored_activations(arch, setup, layer, other_k, tokens)
    # Logits for answer tokens only: bf16 logits, fp32 copy and log-softmax, fp32 gradients in backward.
    answer_rows = setup.micro_batch * setup.sequences * min(setup.label_tokens + 1, setup.seq_len)
    logits = answer_rows * t.vocab * (BF16 + 3 * FP32)
    ref_logits = ref_weights = 0.0
    if setup.stage == "mpo":
        # the reference forward runs after the policy's, whose activations are still held: its answer
        # logits (bf16 + the fp32 log-softmax), no gradients, no stored activations
        ref_logits = answer_rows * t.vocab * (BF16 + FP32)
        if setup.has_reference_copy:  # trl keeps a whole copy unless ZeRO-3 shards it like the policy
            ref_weights = BF16 * sum(p.values()) / (n if setup.zero == 3 else 1)
            notes["reference"] = "a frozen bf16 copy of the model as the reference"
    reference = ref_logits + ref_weights

    total = (weights + vision + gradients + optimizer + buffers + ref_weights
             + max(activations + logits + ref_logits, step, vit_transient))
    host = 0.0
    if setup.offload:  # fp32 master + two states + fp32 gradients on the CPU; stage 3 also the bf16 weights
        host = 4 * FP32 * p_train / n + (BF16 * sum(p.values()) / n if setup.zero == 3 else 0.0)
    return MemoryEstimate(
        weights=float(weights), vision_tower=float(vision), gradients=float(gradients), optimizer=float(optimizer),
        activations=float(activations), activations_other=float(other), logits=float(logits),
        step_transient=float(step), buffers=float(buffers), total=float(total),
        trainable_params=int(p_train), seq_len=setup.seq_len, host_offload=float(host), reference=float(reference),
        notes=notes,
    )
