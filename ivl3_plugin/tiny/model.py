"""A tiny, random-init, transformers-native InternVL3 built offline in seconds.

It keeps InternVL3's real layout (448 px tiles, patch 14, pixel-shuffle 0.5 ->
256 ``<IMG_CONTEXT>`` tokens per tile, Qwen2 text model, chatml) with tiny
widths and depths, so every code path that real checkpoints take runs on CPU.
ms-swift detects it as model_type ``internvl`` / template ``internvl_hf``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Optional

from .tokenizer import SPECIAL_TOKENS, build_tokenizer

# InternVL3 / Qwen2.5 chat template (chatml); images become <image>, videos <video>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\n你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

BUILD = 2  # 2: a sine-cosine ViT position table (the demo's held-out videos are read right)
TINY = dict(vision_hidden=64, vision_layers=2, vision_heads=4, text_hidden=64, text_layers=2, text_heads=4, kv_heads=2)


def build_tiny_model(out_dir: os.PathLike, seed: int = 0, extra_text: Iterable[str] = (), overwrite: bool = False) -> Path:
    """Write a tiny InternVL3 (weights, config, tokenizer, processor) to ``out_dir``.

    Deterministic for a given ``seed`` and ``extra_text``; reuses an existing
    complete directory unless ``overwrite``.
    """
    out = Path(out_dir)
    marker = out / "ivl3_tiny.json"
    extra_text = list(extra_text)
    recipe = {"seed": seed, "special_tokens": SPECIAL_TOKENS, "layout": TINY, "build": BUILD,
              "text": hashlib.sha256("\n".join(extra_text).encode()).hexdigest()}
    if marker.exists() and not overwrite and json.loads(marker.read_text()) == recipe:
        return out  # the same build: reuse it (an older build or other words: built again)
    import torch
    from transformers import (
        GotOcr2ImageProcessorPil,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
    )

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(extra_text)
    t = TINY
    config = InternVLConfig(
        vision_config=dict(
            hidden_size=t["vision_hidden"], num_hidden_layers=t["vision_layers"], num_attention_heads=t["vision_heads"],
            intermediate_size=4 * t["vision_hidden"], image_size=[448, 448], patch_size=[14, 14],
        ),
        text_config=dict(
            model_type="qwen2", vocab_size=len(tokenizer), hidden_size=t["text_hidden"],
            num_hidden_layers=t["text_layers"], num_attention_heads=t["text_heads"],
            num_key_value_heads=t["kv_heads"], intermediate_size=4 * t["text_hidden"],
            max_position_embeddings=32768, tie_word_embeddings=True,
            bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=256,
        downsample_ratio=0.5,
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).to(torch.float32)
    with torch.no_grad():  # transformers starts the ViT's position table at zero: no patch would know where it is
        table = model.model.vision_tower.embeddings.position_embeddings
        table[0, 1:] = sincos_2d(table.shape[-1], int(round((table.shape[1] - 1) ** 0.5))).to(table.dtype)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)

    image_processor = GotOcr2ImageProcessorPil(
        size={"height": 448, "width": 448}, crop_to_patches=False, min_patches=1, max_patches=12,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], do_convert_rgb=True,
    )
    kwargs = {}
    try:  # needs torchvision; the processor works without a video processor for images
        from transformers import InternVLVideoProcessor

        kwargs["video_processor"] = InternVLVideoProcessor(
            size={"height": 448, "width": 448}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
        )
    except Exception:
        pass
    processor = InternVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=256, chat_template=CHAT_TEMPLATE, **kwargs
    )
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker.write_text(json.dumps(recipe, indent=1))
    return out


def sincos_2d(width: int, side: int):
    """The fixed 2-D sine-cosine position table of ViT/MAE (row and column halves), ``[side*side, width]``."""
    import torch

    def axis(dim: int, pos):
        freq = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
        angle = pos[:, None].double() * freq[None]
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return torch.cat([axis(width // 2, rows.reshape(-1)), axis(width // 2, cols.reshape(-1))], dim=1).float()


def default_tiny_model_dir() -> Path:
    """Where the demo and tests keep the tiny model: ``tiny-internvl3`` under the HOME setting."""
    from ..settings import home

    return home() / "tiny-internvl3"


def demo_text() -> list:
    """The bundled summaries: the tokenizer learns their words as whole tokens."""
    from ..demo_data import ANNOTATIONS

    if not ANNOTATIONS.exists():
        return []
    return [json.loads(line)["summary"] for line in ANNOTATIONS.read_text().splitlines() if line.strip()]


def ensure_tiny_model(path: Optional[os.PathLike] = None) -> Path:
    return build_tiny_model(path or default_tiny_model_dir(), extra_text=demo_text())
