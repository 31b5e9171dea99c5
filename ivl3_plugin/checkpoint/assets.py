"""What a converted checkpoint carries besides its weights: tokenizer, processor configs, generation config.

-hf outputs get 448 px ImageNet image *and* video processors (transformers' InternVL video processor
defaults to 384 px and CLIP statistics: OpenGVLab/InternVL#1184), also as the separate files
transformers-4.x-era loaders read; tokenizer configs are written so 4.x reads them too.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict

from . import configs as cfg
from .errors import CheckpointError
from .tokenizer_files import has_tokenizer

HF_NAMED_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>",
                   "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}


def load_tokenizer(folder: Path, fmt: str):
    if not has_tokenizer(folder):
        raise CheckpointError(f"{folder}: no tokenizer files (tokenizer.json or vocab.json + merges.txt)")
    from transformers import AutoTokenizer

    from transformers.utils import logging as hf_logging

    kwargs = dict(HF_NAMED_TOKENS) if fmt == "hf" else {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # AutoTokenizer peeks at config.json and warns about model_type internvl_chat
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, **kwargs)
    except Exception as exc:
        raise CheckpointError(f"{folder}: its tokenizer does not load without remote code ({type(exc).__name__}: "
                              f"{exc})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    vocab = tok.get_vocab()
    for token in ("<img>", "</img>", "<IMG_CONTEXT>"):
        if token not in vocab:
            raise CheckpointError(f"{folder}: the tokenizer has no {token} token (not an InternVL tokenizer)")
    if fmt == "hf" and "<video>" not in vocab:
        # InternVLProcessor expands <video> into frames before tokenising; the id never reaches the model.
        tok.add_tokens(["<video>"], special_tokens=True)
    return tok


def patch_tokenizer_config(folder: Path, named: Dict[str, str]) -> None:
    """tokenizer_config.json readable by transformers 4.x too (class name it knows, named tokens as a dict)."""
    path = folder / "tokenizer_config.json"
    data = json.loads(path.read_text())
    for key in ("is_local", "local_files_only", "model_specific_special_tokens"):  # load-time kwargs echoed back
        data.pop(key, None)
    if data.get("tokenizer_class") == "TokenizersBackend":  # transformers 5's generic name; 4.x lacks it
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
    if named:
        extra = data.get("extra_special_tokens")
        if isinstance(extra, list) and extra:
            data["additional_special_tokens"] = extra
        data["extra_special_tokens"] = dict(named)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_hf_assets(tok, tmp: Path, desc: cfg.ModelDesc) -> None:
    from transformers import GotOcr2ImageProcessorPil, InternVLProcessor, InternVLVideoProcessor

    size = desc.image_size
    image = GotOcr2ImageProcessorPil(
        size={"height": size, "width": size}, crop_to_patches=False, min_patches=1, max_patches=12,
        image_mean=cfg.IMAGENET_MEAN, image_std=cfg.IMAGENET_STD, do_convert_rgb=True)
    video = InternVLVideoProcessor(size={"height": size, "width": size}, image_mean=cfg.IMAGENET_MEAN,
                                   image_std=cfg.IMAGENET_STD)
    processor = InternVLProcessor(image_processor=image, tokenizer=tok, video_processor=video,
                                  image_seq_length=desc.tokens_per_tile, chat_template=HF_CHAT_TEMPLATE)
    processor.save_pretrained(str(tmp))
    # transformers 4.x reads the image and video processors from their own files
    (tmp / "preprocessor_config.json").write_text(json.dumps(image_processor_dict(size), indent=2) + "\n")
    (tmp / "video_preprocessor_config.json").write_text(json.dumps(video_processor_dict(size), indent=2) + "\n")
    patch_tokenizer_config(tmp, {k: str(getattr(tok, k)) for k in HF_NAMED_TOKENS})


def write_remote_assets(tok, tmp: Path, code) -> None:
    folder, _, files = code
    tok.save_pretrained(str(tmp))
    patch_tokenizer_config(tmp, {})
    for path in files:
        shutil.copyfile(path, tmp / path.name)
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        shutil.copyfile(pre, tmp / "preprocessor_config.json")
    else:
        (tmp / "preprocessor_config.json").write_text(json.dumps(cfg.REMOTE_PREPROCESSOR, indent=2) + "\n")


def write_generation_config(ckpt, tok, tmp: Path) -> None:
    for folder in (ckpt.path, ckpt.tokenizer_dir):
        if (folder / "generation_config.json").is_file():
            shutil.copyfile(folder / "generation_config.json", tmp / "generation_config.json")
            return
    eos = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else ckpt.desc.text.get(
        "eos_token_id")
    data = {"bos_token_id": ckpt.desc.text.get("bos_token_id"), "eos_token_id": eos, "pad_token_id": tok.pad_token_id}
    (tmp / "generation_config.json").write_text(json.dumps({k: v for k, v in data.items() if v is not None},
                                                           indent=2) + "\n")


def image_processor_dict(image_size: int) -> Dict[str, Any]:
    return {
        "crop_to_patches": False, "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": cfg.IMAGENET_MEAN, "image_std": cfg.IMAGENET_STD, "image_processor_type": "GotOcr2ImageProcessor",
        "max_patches": 12, "min_patches": 1, "resample": 3, "rescale_factor": 1 / 255,
        "size": {"height": image_size, "width": image_size}, "processor_class": "InternVLProcessor",
    }


def video_processor_dict(image_size: int) -> Dict[str, Any]:
    return {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "do_sample_frames": False, "image_mean": cfg.IMAGENET_MEAN, "image_std": cfg.IMAGENET_STD, "initial_shift": True,
        "resample": 3, "rescale_factor": 1 / 255, "size": {"height": image_size, "width": image_size},
        "video_processor_type": "InternVLVideoProcessor", "processor_class": "InternVLProcessor",
    }


#: The -hf chat template: InternVL3's chatml with its default system prompt (what the remote code and our
#: training template use), images as ``<IMG_CONTEXT>`` and videos as ``<video>`` (what InternVLProcessor expands).
HF_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + cfg.INTERNVL3_SYSTEM + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
