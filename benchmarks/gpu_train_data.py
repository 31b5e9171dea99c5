"""Inputs of ``gpu_train.py``: random-init InternVL3 model folders at the real sizes, synthetic videos, and
the annotation rows of both sides (raw mp4s for native, ``ivl3 convert``'s frames for ours).

Kept apart so other benchmarks (``mpo_gpu.py``, ``remote_vs_hf.py``) build the same model and clips; heavy
imports (torch, transformers, PyAV) stay inside the functions.
"""
from __future__ import annotations

import json
from pathlib import Path

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


def make_data(work: Path, n_videos: int, frames: int, size: int, mixed: tuple = None,
              frame_format: str = "jpeg") -> dict:
    """Raw videos + annotations (native rows) and the same videos converted (our rows); ``mixed=(lo, hi)``:
    clips of lo..hi frames and summaries of 1-8 sentences instead (``benchmarks/mixed_data.py``).
    ``frame_format``: how ``ivl3 convert`` stores our frames.  JPEG (its default) re-encodes the decoded
    frames, so our pixels differ from native's a little; PNG keeps them exactly (the loss A/B of the sides)."""
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

    conv = work / ("converted" if frame_format == "jpeg" else f"converted-{frame_format}")
    convert(work / "annotations.jsonl", conv, num_frames=frames, val_fraction=0.0, formats=["swift"],
            image_format=frame_format)
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

