"""Mixed-length benchmark data: clips of varied frame counts and summaries of varied length (seeded).

Why: real video-summary datasets mix short and long clips (8-32 frames) and short and long summaries.
A benchmark of identical samples pads nothing, so it hides what padding costs a micro-batch larger
than one: every row is padded to the longest of its batch.  ``gpu_train.py --mixed LO-HI`` trains
native and ours on these rows and reports the padding fraction measured from the collated batches.

The native side reads each raw mp4 whole (ms-swift's ``internvl_hf`` path keeps every frame of the
file), so each clip is written with exactly its frame count; ours converts each clip to that many
frames (``ivl3 convert`` samples a fixed count per call, so clips are converted grouped by count) and
the rows are put back in annotation order, so both sides see the same samples in the same order.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable, Dict, List, Tuple

WORDS = ("square", "circle", "moves", "slowly", "across", "the", "noisy", "background", "while", "colour",
         "stays", "bright", "and", "camera", "holds", "still", "left", "right", "towards", "edge", "frame")


def parse_range(text: str) -> Tuple[int, int]:
    """``"8-32"`` -> (8, 32); a bad range is a ValueError naming it."""
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise ValueError(f"--mixed: a frame range LO-HI such as 8-32, got {text!r}") from None
    if not 1 <= lo <= hi:
        raise ValueError(f"--mixed: need 1 <= LO <= HI, got {text!r}")
    return lo, hi


def mixed_specs(n: int, lo: int, hi: int, seed: int = 0) -> List[Dict]:
    """Per clip: its frame count (uniform in [lo, hi]) and a summary of 1-8 sentences (seeded, so both
    sides and every rerun get the same data)."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        sentences = []
        for _ in range(rng.randint(1, 8)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
            sentences.append(" ".join(words).capitalize() + ".")
        specs.append({"id": f"clip{i:03d}", "frames": rng.randint(lo, hi),
                      "summary": f"Clip {i}: " + " ".join(sentences)})
    return specs


def make_mixed_data(work: Path, n: int, lo: int, hi: int, size: int,
                    write_video: Callable[[Path, int, int, int], None], seed: int = 0) -> dict:
    """Raw clips + ms-swift rows (native) and the converted frames (ours), same samples, same order."""
    from ivl3_plugin.convert import convert
    from ivl3_plugin.shared.prompts import render_instruction

    vids = work / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    specs = mixed_specs(n, lo, hi, seed)
    by_count: Dict[int, List[Dict]] = {}
    for s in specs:
        path = vids / f"{s['id']}_{s['frames']}f.mp4"
        if not path.exists():
            write_video(path, s["frames"], size, int(s["id"][4:]))
        s["video"] = str(path)
        by_count.setdefault(s["frames"], []).append(s)
    rows: Dict[str, dict] = {}
    for count, group in sorted(by_count.items()):
        ann = work / f"annotations_{count}f.jsonl"
        ann.write_text("".join(json.dumps({"id": s["id"], "video": s["video"], "summary": s["summary"]}) + "\n"
                               for s in group))
        out = convert(ann, work / "converted" / f"{count}f", num_frames=count, val_fraction=0.0, formats=["swift"])
        for line in (Path(out) / "swift" / "train.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["id"]] = row
    missing = [s["id"] for s in specs if s["id"] not in rows]
    if missing:
        raise SystemExit(f"converter wrote no row for {missing[:5]} ({len(missing)} of {n})")
    ours = work / "ours_mixed.jsonl"
    ours.write_text("".join(json.dumps(rows[s["id"]]) + "\n" for s in specs))
    instruction = render_instruction("concise")
    native = work / "native_mixed.jsonl"
    native.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "<video>" + instruction},
                                                       {"role": "assistant", "content": s["summary"]}],
                                          "videos": [s["video"]]}) + "\n" for s in specs))
    frames = [s["frames"] for s in specs]
    return {"ours": ours, "native": native, "frames_mean": sum(frames) / n, "frames_min": min(frames),
            "frames_max": max(frames), "summary_chars_mean": sum(len(s["summary"]) for s in specs) / n}
