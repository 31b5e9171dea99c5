"""A byte-level BPE tokenizer trained locally, carrying InternVL3's special tokens.

Real InternVL3 uses Qwen2.5's tokenizer, which we cannot download; this one
has the same pre-tokenizer, the same special tokens and the ``*_token`` /
``*_token_id`` attributes that ``InternVLProcessor`` reads.
"""
from __future__ import annotations

from typing import Iterable, List

SPECIAL_TOKENS: List[str] = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
    "<video>",
]

# Qwen2's pre-tokenisation pattern (digits one by one, words with a leading space).
_QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_BASE_TEXT = [
    "Please provide a concise summary of this video.",
    "Describe the video in detail. Summarise the main events as bullet points.",
    "Frame1: Frame2: Frame3: Frame4: Frame5: Frame6: Frame7: Frame8: Frame 0.0s 1.5s",
    "The video shows a person, an object, a scene. It moves, falls, rises, turns, stops.",
    "You are a helpful assistant. user assistant system",
    "0123456789 , . : ; ! ? ( ) - the a an of and in on to from with at by",
]


def build_tokenizer(extra_text: Iterable[str] = (), vocab_size: int = 1200):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = list(_BASE_TEXT) + [t for t in extra_text]
    tok.train_from_iterator(corpus * 3, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=32768,
        extra_special_tokens={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
    )
