"""The dataset files one run writes, each format from the same ordered samples.

``samples.jsonl`` is the canonical record; the ms-swift, InternVL,
LLaMA-Factory and Hugging Face ``datasets`` files are views of it.  Every file
is written to a temporary name and renamed, so readers never see half a file.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ..shared.atomic import write_text_atomic

SPLITS = ("train", "val")
OUTPUT_FORMATS = ("swift", "internvl", "llamafactory", "hf")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def user_text(sample: dict) -> str:
    return "<video>\n" + sample["instruction"]


def split_rows(samples: List[dict], split: str) -> Iterator[Tuple[dict, str, str]]:
    """``(sample, summary, row id)`` of one split's dataset rows.

    A video with several reference summaries gives one *training* row per summary (ids ``ID``,
    ``ID#2``, ``ID#3``...: each reference is a target), and one *validation* row (the first summary as
    the target; the ms-swift row lists them all under ``references``, which ``ivl3 predict`` keeps).
    """
    for s in samples:
        texts = s.get("summaries") or [s["summary"]]
        if split != "train":
            texts = texts[:1]
        for k, text in enumerate(texts):
            yield s, text, s["id"] if k == 0 else f"{s['id']}#{k + 1}"


def swift_row(s: dict, summary: Optional[str] = None, row_id: Optional[str] = None, split: str = "val") -> dict:
    """The ms-swift row contract other parts of ivl3 read (template, metric)."""
    row = {"id": row_id or s["id"],
           "messages": [{"role": "user", "content": user_text(s)},
                        {"role": "assistant", "content": summary if summary is not None else s["summary"]}],
           "videos": [s["frames"]], "timestamps": [s["timestamps"]]}
    if split != "train" and len(s.get("summaries") or ()) > 1:
        row["references"] = list(s["summaries"])
    return row


def write_swift(out: Path, by_split: Dict[str, List[dict]]) -> None:
    for split in SPLITS:
        write_jsonl(out / "swift" / f"{split}.jsonl",
                    [swift_row(s, text, rid, split) for s, text, rid in split_rows(by_split[split], split)])


def write_internvl(out: Path, by_split: Dict[str, List[dict]]) -> None:
    """InternVL's meta.json + annotation JSONL; ``video`` is a frames folder ending in '/'.

    InternVL's trainer reads a path ending in '/' as a folder of frames, so it
    loads our images instead of decoding the video again.
    """
    meta = {}
    for split in SPLITS:
        rows = [{"id": rid, "video": os.path.relpath(Path(s["frames"][0]).parent, out) + "/",
                 "conversations": [{"from": "human", "value": user_text(s)}, {"from": "gpt", "value": text}]}
                for s, text, rid in split_rows(by_split[split], split)]
        ann = out / "internvl" / f"{split}.jsonl"
        write_jsonl(ann, rows)
        meta[f"ivl3_{split}"] = {"root": str(out.resolve()), "annotation": str(ann.resolve()), "data_augment": False,
                                 "repeat_time": 1, "length": len(rows)}
    write_text_atomic(out / "internvl" / "meta.json", json.dumps(meta, indent=2) + "\n")


def write_llamafactory(out: Path, by_split: Dict[str, List[dict]]) -> None:
    """``dataset_info.json`` (sharegpt, role/content tags) + one JSON file per split.

    LLaMA-Factory accepts a video given as a list of frame images.
    """
    info = {}
    for split in SPLITS:
        rows = [{"messages": [{"role": "user", "content": user_text(s)},
                              {"role": "assistant", "content": text}],
                 "videos": [s["frames"]]} for s, text, _ in split_rows(by_split[split], split)]
        write_text_atomic(out / "llamafactory" / f"{split}.json", json.dumps(rows, ensure_ascii=False, indent=1))
        info[f"ivl3_{split}"] = {
            "file_name": f"{split}.json", "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
    write_text_atomic(out / "llamafactory" / "dataset_info.json", json.dumps(info, indent=2) + "\n")


def write_hf(out: Path, by_split: Dict[str, List[dict]]) -> None:
    """A ``datasets.DatasetDict`` (train/val) saved with ``save_to_disk`` under ``hf/``."""
    import datasets

    msg = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    features = datasets.Features({
        "id": datasets.Value("string"), "messages": msg,
        "videos": datasets.List(datasets.List(datasets.Value("string"))),
        "timestamps": datasets.List(datasets.List(datasets.Value("float64"))),
        "summary": datasets.Value("string"), "source": datasets.Value("string"),
        "references": datasets.List(datasets.Value("string")),
    })
    dd = {}
    for split in SPLITS:
        rows = [dict(swift_row(s, text, rid, split), summary=text, source=s["source"],
                     references=list(s.get("summaries") or [s["summary"]]))
                for s, text, rid in split_rows(by_split[split], split)]
        cols = {k: [r[k] for r in rows] for k in features}
        dd[split] = datasets.Dataset.from_dict(cols, features=features)
    tmp = out / f".hf.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    quiet = not datasets.utils.are_progress_bars_disabled()
    if quiet:
        datasets.disable_progress_bars()  # our own bar is the one the user watches
    try:
        # one shard per split: an empty split saved with the default sharding cannot be loaded back
        datasets.DatasetDict(dd).save_to_disk(str(tmp), num_shards={split: 1 for split in SPLITS})
    finally:
        if quiet:
            datasets.enable_progress_bars()
    final = out / "hf"
    old = out / f".hf-old.{uuid.uuid4().hex[:6]}"
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


WRITERS: Dict[str, Callable[[Path, Dict[str, List[dict]]], None]] = {
    "swift": write_swift, "internvl": write_internvl, "llamafactory": write_llamafactory, "hf": write_hf,
}


def write_all(out: Path, samples: List[dict], skipped: List[dict], formats: Iterable[str], summary: dict) -> None:
    out = Path(out)
    by_split = {split: [s for s in samples if s["split"] == split] for split in SPLITS}
    canonical = [{k: s[k] for k in ("id", "source", "summary", "summaries", "frames", "timestamps", "split", "clip",
                                    "fps", "indices", "source_file", "source_row")} for s in samples]
    write_jsonl(out / "samples.jsonl", canonical)
    for fmt in formats:
        WRITERS[fmt](out, by_split)
    write_jsonl(out / "skipped.jsonl", skipped)
    write_text_atomic(out / "report.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
