"""A tiny, random-init InternVL3 in OpenGVLab's **remote-code** format, built offline in seconds.

Same widths, tokenizer and chat template as the transformers-native tiny model (:mod:`.model`), but laid
out like the released ``OpenGVLab/InternVL3-*`` folders: ``config.json`` with ``model_type``
``internvl_chat``, ``architectures: ["InternVLChatModel"]``, an ``auto_map`` and ``vision_config`` /
``llm_config`` sub-configs; the modeling and configuration files beside it (our own, shipped in
``remote_code/``: no timm, eager vision attention); and safetensors with the remote tensor names
(``vision_model.*``, ``mlp1.{0,1,3}.*``, ``language_model.model.*``, ``language_model.lm_head.*``).

``vision="6b"`` gives the InternViT-6B flavour (qk-normalisation, RMSNorm, no qkv bias) used by
InternVL3-38B/78B; ``post_init=False`` gives release-era classes that never call ``post_init()``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

from ..checkpoint.configs import REMOTE_AUTO_MAP as AUTO_MAP, REMOTE_PREPROCESSOR
from ..checkpoint.assets import patch_tokenizer_config
from .model import CHAT_TEMPLATE, TINY
from .tokenizer import SPECIAL_TOKENS, build_tokenizer

REMOTE_CODE_DIR = Path(__file__).resolve().parent / "remote_code"
REMOTE_CODE_FILES = (
    "configuration_intern_vit.py", "configuration_internvl_chat.py",
    "modeling_intern_vit.py", "modeling_internvl_chat.py",
)
_POST_INIT_LINE = "self.post_init()  # release-era: absent"
VISION_STYLES = {
    # InternViT-300M (InternVL3-1B..14B): LayerNorm, qkv bias, no qk-norm
    "300m": dict(qkv_bias=True, qk_normalization=False, norm_type="layer_norm", initializer_factor=1.0),
    # InternViT-6B (InternVL3-38B/78B): RMSNorm, qk-normalisation, no qkv bias
    "6b": dict(qkv_bias=False, qk_normalization=True, norm_type="rms_norm", initializer_factor=0.1),
}


def remote_config(vocab_size: int, *, bos_id: int, eos_id: int, vision: str = "300m", tie_word_embeddings=False,
                  rope_theta: float = 1_000_000.0, rope_scaling: Optional[dict] = None, layout: dict = TINY) -> dict:
    """The ``config.json`` dict of the tiny remote model, in the released (transformers-4.x-era) spelling."""
    if vision not in VISION_STYLES:
        raise ValueError(f"vision must be one of {sorted(VISION_STYLES)}, got {vision!r}")
    t = layout
    vision_config = dict(
        architectures=["InternVisionModel"], model_type="intern_vit_6b", num_channels=3, patch_size=14,
        image_size=448, hidden_size=t["vision_hidden"], num_attention_heads=t["vision_heads"],
        intermediate_size=4 * t["vision_hidden"], num_hidden_layers=t["vision_layers"], hidden_act="gelu",
        layer_norm_eps=1e-6, dropout=0.0, drop_path_rate=0.0, attention_dropout=0.0, initializer_range=0.02,
        use_flash_attn=False, torch_dtype="float32", **VISION_STYLES[vision],
    )
    llm_config = dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=vocab_size, hidden_size=t["text_hidden"],
        intermediate_size=4 * t["text_hidden"], num_hidden_layers=t["text_layers"],
        num_attention_heads=t["text_heads"], num_key_value_heads=t["kv_heads"], hidden_act="silu",
        max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=rope_theta, rope_scaling=rope_scaling,
        tie_word_embeddings=tie_word_embeddings, use_sliding_window=False, sliding_window=4096,
        max_window_layers=t["text_layers"], bos_token_id=bos_id, eos_token_id=eos_id, attention_dropout=0.0,
        initializer_range=0.02, use_cache=True, torch_dtype="float32",
    )
    config = dict(
        architectures=["InternVLChatModel"], auto_map=dict(AUTO_MAP), model_type="internvl_chat",
        vision_config=vision_config, llm_config=llm_config, downsample_ratio=0.5, force_image_size=448,
        select_layer=-1, ps_version="v2", template="internvl2_5", dynamic_image_size=True, use_thumbnail=True,
        min_dynamic_patch=1, max_dynamic_patch=12, pad2square=False, use_backbone_lora=0, use_llm_lora=0,
        hidden_size=t["text_hidden"], tie_word_embeddings=tie_word_embeddings, torch_dtype="float32",
    )
    return config


def build_tiny_remote_model(out_dir: os.PathLike, seed: int = 0, post_init: bool = True, vision: str = "300m",
                            tie_word_embeddings: bool = False, rope_theta: float = 1_000_000.0,
                            rope_scaling: Optional[dict] = None, extra_text: Iterable[str] = (),
                            overwrite: bool = False) -> Path:
    """Write the tiny remote-format InternVL3 to ``out_dir``; deterministic for the same arguments.

    Reuses an existing complete folder built with the same arguments unless ``overwrite``.
    """
    out = Path(out_dir)
    extra_text = list(extra_text)
    recipe = {"seed": seed, "post_init": post_init, "vision": vision, "tie_word_embeddings": tie_word_embeddings,
              "rope_theta": rope_theta, "rope_scaling": rope_scaling, "extra_text": len(extra_text),
              "layout": TINY, "special_tokens": SPECIAL_TOKENS}
    marker = out / "ivl3_tiny_remote.json"
    if marker.exists() and not overwrite and json.loads(marker.read_text()) == recipe:
        return out
    import torch
    from safetensors.torch import save_file
    from transformers import GenerationConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tokenizer = _remote_tokenizer(build_tokenizer(extra_text))
    bos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config_dict = remote_config(len(tokenizer), bos_id=bos, eos_id=eos, vision=vision,
                                tie_word_embeddings=tie_word_embeddings, rope_theta=rope_theta,
                                rope_scaling=rope_scaling)
    (out / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n")
    for name in REMOTE_CODE_FILES:
        code = (REMOTE_CODE_DIR / name).read_text()
        if not post_init:  # the release-era classes: no post_init() call at the end of __init__
            code = "".join(line for line in code.splitlines(keepends=True) if _POST_INIT_LINE not in line)
        (out / name).write_text(code)

    # The model class exactly as a user's transformers would import it from the folder.
    config_cls = get_class_from_dynamic_module(AUTO_MAP["AutoConfig"], str(out))
    model_cls = get_class_from_dynamic_module(AUTO_MAP["AutoModel"], str(out))
    config = config_cls(**{k: v for k, v in config_dict.items() if k not in ("architectures", "auto_map", "model_type")})
    torch.manual_seed(seed)
    model = model_cls(config)
    if not post_init:  # release-era classes leave initialisation to from_pretrained; give the fixture real values
        model.post_init()
    model = model.to(torch.float32)
    state = {}
    for name, tensor in model.state_dict().items():
        if tie_word_embeddings and name == "language_model.lm_head.weight":
            continue  # tied: the file carries only the embedding (as released tied checkpoints do)
        state[name] = tensor.detach().clone().contiguous()
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})

    GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id).save_pretrained(out)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    patch_tokenizer_config(out, {})  # a tokenizer class transformers 4.x knows, as released folders have
    (out / "preprocessor_config.json").write_text(json.dumps(REMOTE_PREPROCESSOR, indent=2) + "\n")
    marker.write_text(json.dumps(recipe, indent=1))
    return out


def _remote_tokenizer(tokenizer):
    """The same vocabulary without the named multimodal tokens (``context_image_token``…) that only the
    -hf processor reads: released remote-code tokenizers do not carry them."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, eos_token=tokenizer.eos_token,
                                   pad_token=tokenizer.pad_token, bos_token=None, unk_token=None,
                                   model_max_length=tokenizer.model_max_length)


def load_tiny_remote(path: os.PathLike, **kwargs):
    """``AutoModel.from_pretrained(path, trust_remote_code=True)`` with the release-era ``post_init`` repair
    and ``img_context_token_id`` set from the folder's tokenizer (what a caller of the remote code does)."""
    from ..checkpoint.remote_load import load_remote_model

    return load_remote_model(path, **kwargs)
