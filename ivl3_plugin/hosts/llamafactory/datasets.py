"""LLaMA-Factory host adapter, datasets: ``dataset_info.json`` entries for registered and converted datasets.

LLaMA-Factory finds datasets through a ``dataset_info.json`` in its ``dataset_dir``; we write one
naming every dataset a run asks for (a registered name, ``NAME-val`` for its val split, or a
converted folder).  No llamafactory import: this also runs in the ms-swift environment.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ...shared.atomic import write_text_atomic

DATA_DIR_NAME = "ivl3_lf_data"    # generated dataset_dir under output_dir


def parse_dataset_key(key: str, plugins=None) -> Tuple[str, str]:
    """``NAME`` -> (NAME, "train"); ``NAME-val`` -> (NAME, "val") when NAME is known or a folder."""
    base, _, split = key.rpartition("-")
    if base and split in ("train", "val", "test") and _known(base, plugins):
        return base, split
    return key, "train"


def _known(name: str, plugins) -> bool:
    return name in _datasets(plugins) or (Path(name).expanduser() / "llamafactory").is_dir()


def _datasets(plugins):
    if plugins is None:
        from ...plugins import get_plugins

        plugins = get_plugins()
    return plugins.datasets


def lf_entry(key: str, plugins=None) -> Dict[str, Any]:
    """The ``dataset_info.json`` entry for one dataset key (a registered name or a converted folder)."""
    base, split = parse_dataset_key(key, plugins)
    registry = _datasets(plugins)
    folder = Path(registry.get(base).path) if base in registry else Path(base).expanduser()
    info_path = folder / "llamafactory" / "dataset_info.json"
    if not info_path.is_file():
        hint = f"ivl3 convert … -o {folder} --formats llamafactory"
        if base not in registry and not folder.is_dir():
            known = ", ".join(registry.names()) or "none"
            raise ValueError(f"dataset {key!r} is neither a registered dataset (known: {known}) nor a converted folder")
        raise ValueError(f"dataset {key!r}: {info_path} is missing; convert it first ({hint})")
    info = json.loads(info_path.read_text())
    entry = info.get(f"ivl3_{split}")
    if entry is None:
        raise ValueError(f"dataset {key!r}: {info_path} has no split {split!r} (has {sorted(info)})")
    entry = dict(entry)
    entry["file_name"] = str((info_path.parent / entry["file_name"]).resolve())
    if not Path(entry["file_name"]).is_file():
        raise ValueError(f"dataset {key!r}: {entry['file_name']} does not exist")
    return entry


def write_dataset_info(dataset_dir: Path, keys: List[str], base_dir: Optional[Path] = None,
                       plugins=None) -> Path:
    """Write ``dataset_dir/dataset_info.json`` holding ``keys`` (plus ``base_dir``'s own entries).

    Atomic (every rank writes the same content), so torchrun ranks may race safely.
    """
    info: Dict[str, Any] = {}
    if base_dir is not None and (Path(base_dir) / "dataset_info.json").is_file():
        for name, entry in json.loads((Path(base_dir) / "dataset_info.json").read_text()).items():
            entry = dict(entry)
            if "file_name" in entry:
                entry["file_name"] = str((Path(base_dir) / entry["file_name"]).resolve())
            info[name] = entry
    for key in keys:
        if key not in info:
            info[key] = lf_entry(key, plugins)
    return write_text_atomic(Path(dataset_dir) / "dataset_info.json",
                             json.dumps(info, indent=2, ensure_ascii=False) + "\n")
