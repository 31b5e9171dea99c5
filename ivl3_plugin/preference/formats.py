"""The pair files: ms-swift's RLHF JSONL and LLaMA-Factory's ranking (pairwise) sharegpt JSON.

Both keep the converted row's prompt exactly (its system and user messages, the ``<video>``
placeholder where the converter put it) and all its frames, so a pair is encoded by the same
template and sees the same frames as the SFT row it came from.

ms-swift (``swift rlhf --rlhf_type dpo`` and the other preference types read this)::

    {"id": ..., "messages": [<system/user messages of the row>, {"role": "assistant", "content": CHOSEN}],
     "rejected_response": REJECTED, "videos": [[frame, ...]], "timestamps": [[...]] (when the row has them)}

LLaMA-Factory (``ranking: true`` in ``dataset_info.json``; a system message goes to ``system``)::

    {"messages": [<user messages>], "chosen": {"role": "assistant", "content": CHOSEN},
     "rejected": {"role": "assistant", "content": REJECTED}, "videos": [[frame, ...]]}
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Dict, List

from ..shared.atomic import write_text_atomic
from .selection import Pair

LF_DATASET_NAME = "ivl3_pairs"
SWIFT_FILE = Path("swift") / "pairs.jsonl"
LF_FILE = Path("llamafactory") / "pairs.json"
LF_INFO = Path("llamafactory") / "dataset_info.json"


def prompt_messages(row: dict) -> List[dict]:
    """The row's messages before its final assistant message (the target), copied."""
    return copy.deepcopy(row["messages"][:-1])


def swift_row(pair: Pair) -> dict:
    row = pair.scored.item.row
    out = {"id": pair.scored.item.id,
           "messages": prompt_messages(row) + [{"role": "assistant", "content": pair.chosen}],
           "rejected_response": pair.rejected,
           "videos": copy.deepcopy(row["videos"])}
    if "timestamps" in row:  # the template labels frames with them
        out["timestamps"] = copy.deepcopy(row["timestamps"])
    return out


def llamafactory_row(pair: Pair) -> dict:
    messages = prompt_messages(pair.scored.item.row)
    system = [m["content"] for m in messages if m.get("role") == "system"]
    out = {"messages": [m for m in messages if m.get("role") != "system"],
           "chosen": {"role": "assistant", "content": pair.chosen},
           "rejected": {"role": "assistant", "content": pair.rejected},
           "videos": copy.deepcopy(pair.scored.item.row["videos"])}
    if system:
        out["system"] = "\n".join(system)
    return out


def llamafactory_info(with_system: bool) -> Dict[str, dict]:
    columns = {"messages": "messages", "chosen": "chosen", "rejected": "rejected", "videos": "videos"}
    if with_system:
        columns["system"] = "system"
    return {LF_DATASET_NAME: {
        "file_name": LF_FILE.name, "formatting": "sharegpt", "ranking": True, "columns": columns,
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "system_tag": "system"}}}


def write_pairs(pairs: List[Pair], out_dir: Path) -> Dict[str, str]:
    """Write both formats under ``out_dir`` (each file atomically); returns ``{name: path}``."""
    out_dir = Path(out_dir)
    swift = write_text_atomic(out_dir / SWIFT_FILE,
                              "".join(json.dumps(swift_row(p), ensure_ascii=False) + "\n" for p in pairs))
    lf_rows = [llamafactory_row(p) for p in pairs]
    lf = write_text_atomic(out_dir / LF_FILE, json.dumps(lf_rows, ensure_ascii=False, indent=1) + "\n")
    info = write_text_atomic(out_dir / LF_INFO, json.dumps(llamafactory_info(any("system" in r for r in lf_rows)),
                                                           indent=2) + "\n")
    return {"swift": str(swift), "llamafactory": str(lf), "llamafactory_dataset_info": str(info)}
