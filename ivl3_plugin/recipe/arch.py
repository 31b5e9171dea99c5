"""InternVL3 architectures as numbers: the sizes the memory planner counts with.

Read from a model directory's ``config.json`` (transformers-native
``InternVLForConditionalGeneration`` or remote-code ``InternVLChatModel``)
or taken from the table of released sizes, so ``ivl3 plan 8B`` needs no
download.  Parameter counts are computed from the layer shapes, not quoted.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Union

from ..shared.layout import PATCH_SIZE, TILE_SIZE, TILE_TOKENS



@dataclass(frozen=True)
class VisionArch:
    layers: int
    hidden: int
    heads: int
    ffn: int
    image: int = TILE_SIZE
    patch: int = PATCH_SIZE
    qk_norm: bool = False  # InternViT-6B normalises q and k
    rms_norm: bool = False  # InternViT-6B uses RMSNorm (weight only)

    @property
    def tokens_per_tile(self) -> int:
        return (self.image // self.patch) ** 2 + 1  # + class token

    def params(self) -> int:
        h, f = self.hidden, self.ffn
        norm = h if self.rms_norm else 2 * h
        per_layer = (4 * h * h + 4 * h) + (h * f + f + f * h + h) + 2 * norm + 2 * h  # attn, mlp, 2 norms, 2 layer scales
        if self.qk_norm:
            per_layer += 2 * norm
        embed = 3 * self.patch * self.patch * h + h + h + self.tokens_per_tile * h  # conv, cls, positions
        return self.layers * per_layer + embed + norm  # + final norm


@dataclass(frozen=True)
class TextArch:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    tie_embeddings: bool
    qkv_bias: bool = True  # Qwen2 has q/k/v biases, InternLM3 has none
    head_dim: int = 0  # 0: hidden // heads

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_width(self) -> int:
        return self.heads * self.dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.dim

    def linear_shapes(self):
        """(in, out) of the seven linears of one decoder layer (q, k, v, o, gate, up, down)."""
        h, f = self.hidden, self.ffn
        return [(h, self.q_width), (h, self.kv_width), (h, self.kv_width), (self.q_width, h), (h, f), (h, f), (f, h)]

    def layer_params(self) -> int:
        linears = sum(i * o for i, o in self.linear_shapes())
        bias = (self.q_width + 2 * self.kv_width) if self.qkv_bias else 0
        return linears + bias + 2 * self.hidden

    def embed_params(self) -> int:
        return self.vocab * self.hidden

    def params(self) -> int:
        heads = 1 if self.tie_embeddings else 2
        return self.layers * self.layer_params() + heads * self.embed_params() + self.hidden

    def lora_params(self, rank: int) -> int:
        """LoRA on every linear of every layer (ms-swift's ``all-linear`` on the LLM)."""
        return self.layers * sum(rank * (i + o) for i, o in self.linear_shapes())


@dataclass(frozen=True)
class ModelArch:
    name: str
    vision: VisionArch
    text: TextArch
    downsample: float = 0.5

    def projector_params(self) -> int:
        v = int(self.vision.hidden / (self.downsample ** 2))
        t = self.text.hidden
        return 2 * v + (v * t + t) + (t * t + t)

    def params(self) -> Dict[str, int]:
        return {"vision": self.vision.params(), "projector": self.projector_params(), "llm": self.text.params()}

    def total_params(self) -> int:
        return sum(self.params().values())


VIT_300M = VisionArch(layers=24, hidden=1024, heads=16, ffn=4096)
VIT_6B = VisionArch(layers=45, hidden=3200, heads=25, ffn=12800, qk_norm=True, rms_norm=True)
QWEN_VOCAB = 151674
INTERNLM3_VOCAB = 128512

ARCHS: Dict[str, ModelArch] = {
    "1B": ModelArch("InternVL3-1B", VIT_300M, TextArch(24, 896, 14, 2, 4864, QWEN_VOCAB, True)),
    "2B": ModelArch("InternVL3-2B", VIT_300M, TextArch(28, 1536, 12, 2, 8960, QWEN_VOCAB, True)),
    "8B": ModelArch("InternVL3-8B", VIT_300M, TextArch(28, 3584, 28, 4, 18944, QWEN_VOCAB, False)),
    "9B": ModelArch("InternVL3-9B", VIT_300M,
                    TextArch(48, 4096, 32, 2, 10240, INTERNLM3_VOCAB, False, qkv_bias=False, head_dim=128)),
    "14B": ModelArch("InternVL3-14B", VIT_300M, TextArch(48, 5120, 40, 8, 13824, QWEN_VOCAB, False)),
    "38B": ModelArch("InternVL3-38B", VIT_6B, TextArch(64, 5120, 40, 8, 27648, QWEN_VOCAB, False)),
    "78B": ModelArch("InternVL3-78B", VIT_6B, TextArch(80, 8192, 64, 8, 29568, QWEN_VOCAB, False)),
}


def _size_key(text: str) -> str:
    key = text.strip().upper().replace("INTERNVL3-", "").replace("INTERNVL3_", "")
    return key if key.endswith("B") else key + "B"


def _first(cfg: dict, *keys, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    return default


def _int(value) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def arch_from_config(config: Union[dict, os.PathLike, str], name: str = "") -> ModelArch:
    """Build a :class:`ModelArch` from an InternVL ``config.json`` (path, directory or dict)."""
    where = "config"
    if not isinstance(config, dict):
        path = Path(config)
        if path.is_dir():
            path = path / "config.json"
        where = str(path)
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{where}: no such file (expected a model directory with config.json)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from None
        name = name or path.parent.name
    vc = config.get("vision_config")
    tc = config.get("text_config") or config.get("llm_config")
    if not isinstance(vc, dict) or not isinstance(tc, dict):
        raise ValueError(f"{where}: an InternVL config needs 'vision_config' and 'text_config' (or 'llm_config')")
    try:
        vision = VisionArch(
            layers=int(vc["num_hidden_layers"]), hidden=int(vc["hidden_size"]),
            heads=int(vc["num_attention_heads"]), ffn=int(vc["intermediate_size"]),
            image=_int(_first(vc, "image_size", default=config.get("force_image_size", TILE_SIZE))),
            patch=_int(_first(vc, "patch_size", default=14)),
            qk_norm=bool(_first(vc, "use_qk_norm", "qk_normalization", default=False)),
            rms_norm=str(_first(vc, "norm_type", default="layer_norm")).startswith("rms"),
        )
        text_type = str(tc.get("model_type", "qwen2"))
        text = TextArch(
            layers=int(tc["num_hidden_layers"]), hidden=int(tc["hidden_size"]),
            heads=int(tc["num_attention_heads"]),
            kv_heads=int(_first(tc, "num_key_value_heads", default=tc["num_attention_heads"])),
            ffn=int(tc["intermediate_size"]), vocab=int(tc["vocab_size"]),
            tie_embeddings=bool(_first(tc, "tie_word_embeddings", default=False)),
            qkv_bias=bool(_first(tc, "qkv_bias", "attention_bias", default=text_type.startswith("qwen2"))),
            head_dim=int(_first(tc, "head_dim", default=0) or 0),
        )
    except KeyError as exc:
        raise ValueError(f"{where}: missing field {exc.args[0]!r} in the vision or text config") from None
    return ModelArch(name or "model", vision, text, float(config.get("downsample_ratio", 0.5)))


def resolve_arch(model: str) -> ModelArch:
    """``"8B"``, ``"InternVL3-8B"`` or a model directory / config.json path."""
    path = Path(os.path.expanduser(str(model)))
    if path.exists():
        return arch_from_config(path)
    key = _size_key(str(model))
    if key in ARCHS:
        return ARCHS[key]
    raise ValueError(f"model {model!r}: not a model directory and not a known size ({', '.join(ARCHS)})")


def matching_size(arch: ModelArch) -> Optional[str]:
    """The released size ("8B") with exactly this architecture (vision and text shapes), else None."""
    def shape(a: ModelArch):
        t, v = a.text, a.vision
        return (t.layers, t.hidden, t.heads, t.kv_heads, t.dim, t.ffn, t.vocab, t.tie_embeddings,
                v.layers, v.hidden, v.heads, v.ffn, v.image, v.patch, a.downsample)

    return next((size for size, known in ARCHS.items() if shape(known) == shape(arch)), None)


def closest_size(arch: ModelArch) -> str:
    """The released size nearest in parameter count (log scale)."""
    import math

    n = arch.total_params()
    return min(ARCHS, key=lambda s: abs(math.log(ARCHS[s].total_params() / n)))


def with_vocab(arch: ModelArch, vocab: int) -> ModelArch:
    return replace(arch, text=replace(arch.text, vocab=vocab))


def hf_config_dict(arch: ModelArch, image_token_id: int = 151667) -> dict:
    """A transformers-native ``InternVLForConditionalGeneration`` config.json for ``arch`` (Qwen2 LLMs).

    Lets benchmarks build a random-init model at real size with no download.
    """
    v, t = arch.vision, arch.text
    return {
        "architectures": ["InternVLForConditionalGeneration"],
        "model_type": "internvl",
        "downsample_ratio": arch.downsample,
        "image_seq_length": TILE_TOKENS,
        "image_token_id": image_token_id,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": t.tie_embeddings,
        "vision_config": {
            "model_type": "internvl_vision", "hidden_size": v.hidden, "num_hidden_layers": v.layers,
            "num_attention_heads": v.heads, "intermediate_size": v.ffn, "image_size": [v.image, v.image],
            "patch_size": [v.patch, v.patch], "attention_bias": True, "use_qk_norm": v.qk_norm,
            "norm_type": "rms_norm" if v.rms_norm else "layer_norm", "use_mean_pooling": False,
        },
        "text_config": {
            "model_type": "qwen2", "hidden_size": t.hidden, "num_hidden_layers": t.layers,
            "num_attention_heads": t.heads, "num_key_value_heads": t.kv_heads, "intermediate_size": t.ffn,
            "vocab_size": t.vocab, "tie_word_embeddings": t.tie_embeddings, "max_position_embeddings": 32768,
            "rope_theta": 1000000.0, "hidden_act": "silu", "rms_norm_eps": 1e-6,
        },
    }
