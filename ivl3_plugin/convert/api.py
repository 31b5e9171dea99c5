"""First, simple converter: serial decord decode, JPEG frames, ms-swift JSONL, split by id."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from ..template.prompts import render_instruction
from .sampling import segment_centre_indices


def split_of(item_id: str, val_fraction: float) -> str:
    h = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def convert(annotations: os.PathLike, out_dir: os.PathLike, num_frames: int = 8, val_fraction: float = 0.2,
            prompt: str = "concise", quality: int = 90, video_root: Optional[os.PathLike] = None) -> Path:
    import decord
    from PIL import Image

    annotations = Path(annotations)
    root = Path(video_root) if video_root else annotations.parent
    out = Path(out_dir)
    (out / "swift").mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "val": []}
    for line in annotations.read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        video = (root / item["video"]).resolve()
        vr = decord.VideoReader(str(video), num_threads=1)
        fps = float(vr.get_avg_fps())
        idx = segment_centre_indices(len(vr), fps, num_frames)
        frames = vr.get_batch(idx).asnumpy()
        fdir = out / "frames" / item["id"]
        fdir.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, arr in enumerate(frames):
            p = fdir / f"{k:03d}.jpg"
            Image.fromarray(arr).save(p, quality=quality)
            paths.append(str(p.resolve()))
        row = {
            "id": item["id"],
            "messages": [
                {"role": "user", "content": "<video>\n" + render_instruction(prompt)},
                {"role": "assistant", "content": item["summary"]},
            ],
            "videos": [paths],
            "timestamps": [[round(i / fps, 3) for i in idx]],
        }
        rows[split_of(item["id"], val_fraction)].append(row)
    for split, items in rows.items():
        with open(out / "swift" / f"{split}.jsonl", "w") as f:
            for r in items:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return out
