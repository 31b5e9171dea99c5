"""Reading and writing safetensors checkpoints one tensor at a time.

:class:`WeightIndex` reads ``model.safetensors`` or a sharded ``model.safetensors.index.json`` folder.
Shapes and dtypes come from the safetensors headers (a few KB per shard, no tensor data, no torch);
tensors are read one by one through memory-mapped ``safe_open`` handles.

:class:`ShardWriter` writes a planned list of tensors into shards of at most ``max_shard_size`` bytes,
holding at most one shard's tensors in memory, plus ``model.safetensors.index.json`` when there is
more than one shard (the layout ``save_pretrained`` writes).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import CheckpointError

SAFE_SINGLE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
DEFAULT_MAX_SHARD_SIZE = 5 * 1024 ** 3


@dataclass(frozen=True)
class TensorInfo:
    shape: Tuple[int, ...]
    dtype: str  # safetensors spelling: F32, BF16, ...

    @property
    def nbytes(self) -> int:
        n = DTYPE_BYTES.get(self.dtype, 4)
        for d in self.shape:
            n *= d
        return n


def read_header(path: Path) -> Dict[str, TensorInfo]:
    """Tensor name -> (shape, dtype) from a safetensors file's header, without reading its data."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
            (length,) = struct.unpack("<Q", raw)
            if length > 100 * 1024 ** 2:
                raise CheckpointError(f"{path}: not a safetensors file (header length {length})")
            header = json.loads(f.read(length))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError:
        raise CheckpointError(f"{path}: not a safetensors file (unreadable header)") from None
    return {name: TensorInfo(tuple(int(d) for d in meta["shape"]), str(meta["dtype"]))
            for name, meta in header.items() if name != "__metadata__"}


class TensorSource:
    """Names, shapes and dtypes of a set of tensors, and each tensor on request."""

    def infos(self) -> Dict[str, TensorInfo]:
        raise NotImplementedError

    def location(self, name: str) -> str:
        return name

    def get(self, name: str):
        raise NotImplementedError


class WeightIndex(TensorSource):
    """The safetensors weights of a checkpoint folder (single file or sharded with an index)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._handles = {}
        index = self.folder / SAFE_INDEX
        single = self.folder / SAFE_SINGLE
        self.files: List[str]
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError):
                raise CheckpointError(f"{index}: not a safetensors index (no weight_map)") from None
            self.index_file: Optional[Path] = index
            self.files = sorted(set(weight_map.values()))
            for name in self.files:
                if not (self.folder / name).is_file():
                    raise CheckpointError(f"{index} names the shard {name}, which is missing from {self.folder}")
            self._file_of = dict(weight_map)
        elif single.is_file():
            self.index_file = None
            self.files = [SAFE_SINGLE]
            self._file_of = None
        else:
            bins = sorted(p.name for p in self.folder.glob("pytorch_model*.bin"))
            hint = (f" (only PyTorch .bin weights: {', '.join(bins[:3])}; load and save_pretrained them as "
                    "safetensors first)") if bins else ""
            raise CheckpointError(f"{self.folder}: no {SAFE_SINGLE} or {SAFE_INDEX}{hint}")
        self._infos: Dict[str, TensorInfo] = {}
        self._where: Dict[str, str] = {}
        for name in self.files:
            header = read_header(self.folder / name)
            for tensor, info in header.items():
                if self._file_of is not None and self._file_of.get(tensor) != name:
                    if tensor not in self._file_of:
                        raise CheckpointError(f"{self.folder / name} holds tensor {tensor}, which {SAFE_INDEX} "
                                              "does not list")
                    continue  # listed under another shard: that one is authoritative
                self._infos[tensor] = info
                self._where[tensor] = name
        if self._file_of is not None:
            for tensor, name in self._file_of.items():
                if tensor not in self._infos:
                    raise CheckpointError(f"{SAFE_INDEX} puts tensor {tensor} in {name}, which does not hold it")

    def infos(self) -> Dict[str, TensorInfo]:
        return self._infos

    def location(self, name: str) -> str:
        return f"{name} ({self._where.get(name, '?')})"

    def file_of(self, name: str) -> str:
        return self._where[name]

    def get(self, name: str):
        from safetensors import safe_open

        file = self._where[name]
        if file not in self._handles:
            self._handles[file] = safe_open(str(self.folder / file), framework="pt", device="cpu")
        return self._handles[file].get_tensor(name)

    def total_bytes(self) -> int:
        return sum(i.nbytes for i in self._infos.values())

    def close(self) -> None:
        self._handles.clear()


def parse_size(size) -> int:
    """``5GB``/``500MB``/``2GiB``/int -> bytes."""
    if isinstance(size, int):
        return size
    text = str(size).strip().upper()
    units = [("GIB", 1024 ** 3), ("MIB", 1024 ** 2), ("KIB", 1024), ("GB", 10 ** 9), ("MB", 10 ** 6), ("KB", 10 ** 3),
             ("B", 1)]
    for unit, factor in units:
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def plan_shards(order: Sequence[Tuple[str, TensorInfo]], max_shard_size: int) -> List[List[str]]:
    """Consecutive groups of tensor names, each group at most ``max_shard_size`` bytes (a bigger tensor alone)."""
    shards: List[List[str]] = []
    current: List[str] = []
    size = 0
    for name, info in order:
        if current and size + info.nbytes > max_shard_size:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += info.nbytes
    if current:
        shards.append(current)
    return shards


def shard_names(count: int) -> List[str]:
    if count == 1:
        return [SAFE_SINGLE]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def write_shards(folder: Path, order: Sequence[Tuple[str, TensorInfo]], make: Callable[[str], "object"],
                 max_shard_size: int = DEFAULT_MAX_SHARD_SIZE, progress: bool = False,
                 description: str = "tensors", metadata: Optional[dict] = None) -> List[str]:
    """Write the tensors of ``order`` (name, expected info) into ``folder``; ``make(name)`` returns each tensor.

    One shard's tensors are held in memory at a time.  Every produced tensor is checked against its
    expected shape before it is written.  Returns the shard file names.
    """
    from safetensors.torch import save_file

    shards = plan_shards(order, max_shard_size)
    names = shard_names(len(shards))
    infos = dict(order)
    bar = _progress(len(order), description, progress)
    weight_map = {}
    try:
        for shard, file in zip(shards, names):
            tensors = {}
            for name in shard:
                tensor = make(name)
                if tuple(tensor.shape) != infos[name].shape:
                    raise CheckpointError(f"tensor {name}: produced shape {tuple(tensor.shape)}, "
                                          f"expected {infos[name].shape}")
                tensors[name] = tensor.contiguous()
                weight_map[name] = file
                bar.update(1)
            save_file(tensors, str(folder / file), metadata={"format": "pt", **(metadata or {})})
            del tensors
    finally:
        bar.close()
    if len(names) > 1:
        total = sum(info.nbytes for _, info in order)
        (folder / SAFE_INDEX).write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2) + "\n")
    return names


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total: int, description: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="tensor")


def torch_dtype_name(dtype: str) -> str:
    return {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}.get(dtype, dtype.lower())


def dominant_dtype(infos: Iterable[TensorInfo]) -> Optional[str]:
    """The floating dtype holding the most bytes (what ``torch_dtype`` in a config should say)."""
    totals: Dict[str, int] = {}
    for info in infos:
        if info.dtype in ("F32", "BF16", "F16", "F64"):
            totals[info.dtype] = totals.get(info.dtype, 0) + info.nbytes
    if not totals:
        return None
    return torch_dtype_name(max(totals, key=totals.get))
