"""Export a training run (a LoRA adapter or a full checkpoint) as a standalone model folder.

``export(run_or_checkpoint, dst, format="hf"|"remote", base=None)``:

* a run folder (``output/`` or ``output/v0-…``) -> its last ``checkpoint-N``;
* a LoRA checkpoint (``adapter_config.json`` + ``adapter_model.safetensors``, what ms-swift writes, gathered
  even under ZeRO-3) -> merged into its base model: ``--base``, else ``base_model_name_or_path`` of
  ``adapter_config.json``, else ``model`` of ms-swift's ``args.json``; the base must be a local folder;
* a full checkpoint (``config.json`` + ``model.safetensors[.index.json]``; ms-swift writes these under
  ZeRO-3 with ``stage3_gather_16bit_weights_on_model_save``) -> converted as it is;
* a checkpoint holding only DeepSpeed ZeRO shards (``global_step*/``) is refused, with the command that
  consolidates it.

The merge is ``W + scale * (B @ A)`` per LoRA target (``scale = lora_alpha / r``, or ``/ sqrt(r)`` with
rsLoRA), computed like peft's ``merge_and_unload`` (float32 for half-precision weights, cast back to the
weight's dtype), tensor by tensor while the converter streams the base, so the exported folder is written
without loading the model.  ``modules_to_save`` tensors replace the base's.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .converter import DEFAULT_MAX_SHARD_SIZE, FORMATS, check_destination, detect_format, open_checkpoint, write
from .errors import CheckpointError
from .mapping import canonical_hf_name
from .weights import SAFE_INDEX, SAFE_SINGLE, TensorInfo, TensorSource, WeightIndex, read_header

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[A-Za-z0-9_]+)?\.weight$")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


# ---- finding the checkpoint ------------------------------------------------------------------------------------
def _has_weights(folder: Path) -> bool:
    return (folder / SAFE_SINGLE).is_file() or (folder / SAFE_INDEX).is_file()


def _zero_shards(folder: Path) -> List[Path]:
    return sorted(p for p in folder.glob("global_step*") if p.is_dir())


def find_checkpoint(path) -> Path:
    """The checkpoint folder ``path`` names: itself, or the last ``checkpoint-N`` of the run under it."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder")
    if (folder / ADAPTER_CONFIG).is_file() or _has_weights(folder) or _zero_shards(folder):
        return folder
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and _CHECKPOINT_DIR.match(p.name)]
    found += [p for p in folder.glob("*/checkpoint-*") if p.is_dir() and _CHECKPOINT_DIR.match(p.name)]
    if not found:
        raise CheckpointError(f"{folder}: neither a checkpoint ({ADAPTER_CONFIG}, {SAFE_SINGLE} or {SAFE_INDEX}) "
                              "nor a run folder holding checkpoint-N folders")
    runs = sorted({p.parent for p in found})
    if len(runs) > 1:
        raise CheckpointError(f"{folder} holds several runs ({', '.join(r.name for r in runs)}); name one of them "
                              "or a checkpoint-N folder")
    return max(found, key=lambda p: int(_CHECKPOINT_DIR.match(p.name).group(1)))


def _refuse_zero(folder: Path) -> None:
    shards = _zero_shards(folder)
    script = folder / "zero_to_fp32.py"
    how = (f"python {script} {folder} {folder} --safe_serialization" if script.is_file() else
           f"DeepSpeed's zero_to_fp32.py (python zero_to_fp32.py {folder} {folder} --safe_serialization)")
    raise CheckpointError(
        f"{folder}: holds only DeepSpeed ZeRO shards ({shards[0].name}/), no consolidated weights; consolidate "
        f"them first with `{how}` (writes model*.safetensors beside config.json), or train with "
        "stage3_gather_16bit_weights_on_model_save: true (ms-swift's ZeRO-3 configs do), then export again")


def _args_json(folder: Path) -> dict:
    path = folder / "args.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            return {}
    return {}


# ---- LoRA ------------------------------------------------------------------------------------------------------
class LoraAdapter:
    """A peft LoRA adapter folder, checked: every ``lora_A`` has its ``lora_B``; no DoRA, bias or embedding LoRA."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        config_path = self.folder / ADAPTER_CONFIG
        try:
            self.config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{config_path}: unreadable ({exc})") from None
        peft_type = str(self.config.get("peft_type", "LORA")).upper()
        if peft_type != "LORA":
            raise CheckpointError(f"{config_path}: peft_type {peft_type}; only LoRA adapters can be merged")
        for flag, what in (("use_dora", "DoRA"), ("lora_bias", "LoRA bias terms"), ("fan_in_fan_out", "fan_in_fan_out")):
            if self.config.get(flag):
                raise CheckpointError(f"{config_path}: {flag} is set; merging {what} is not supported")
        weights = self.folder / ADAPTER_WEIGHTS
        if not weights.is_file():
            if (self.folder / "adapter_model.bin").is_file():
                raise CheckpointError(f"{self.folder}: only adapter_model.bin; save the adapter as safetensors")
            if _zero_shards(self.folder):
                _refuse_zero(self.folder)
            raise CheckpointError(f"{self.folder}: {ADAPTER_WEIGHTS} is missing")
        self.weights = weights
        self.infos = read_header(weights)
        self.pairs: Dict[str, Dict[str, str]] = {}   # module -> {"A": key, "B": key}
        self.replaced: Dict[str, str] = {}            # module parameter -> key (modules_to_save)
        for key in self.infos:
            if "lora_embedding_" in key or "lora_magnitude" in key:
                raise CheckpointError(f"{weights}: tensor {key}: embedding LoRA / DoRA magnitudes cannot be merged")
            m = _LORA_KEY.match(key)
            if m:
                self.pairs.setdefault(m.group("module"), {})[m.group("ab")] = key
            elif ".lora_" in key:
                raise CheckpointError(f"{weights}: tensor {key} is not a LoRA A/B weight")
            else:
                name = key[len("base_model.model."):] if key.startswith("base_model.model.") else key
                self.replaced[name] = key
        for module, ab in self.pairs.items():
            if set(ab) != {"A", "B"}:
                raise CheckpointError(f"{weights}: {module} has lora_{'A' if 'A' in ab else 'B'} but no "
                                      f"lora_{'B' if 'A' in ab else 'A'}")
        if not self.pairs and not self.replaced:
            raise CheckpointError(f"{weights}: no LoRA tensors")
        self._handle = None

    def base_reference(self) -> Optional[str]:
        return self.config.get("base_model_name_or_path") or _args_json(self.folder).get("model")

    def scale(self, module: str) -> float:
        rank = self.infos[self.pairs[module]["A"]].shape[0]
        alpha = float(self.config.get("lora_alpha", 8))
        for key, value in (self.config.get("alpha_pattern") or {}).items():
            if re.match(rf"(.*\.)?{key}$", module):
                alpha = float(value)
                break
        return alpha / math.sqrt(rank) if self.config.get("use_rslora") else alpha / rank

    def get(self, key: str):
        if self._handle is None:
            from safetensors import safe_open

            self._handle = safe_open(str(self.weights), framework="pt", device="cpu")
        return self._handle.get_tensor(key)


class MergedSource(TensorSource):
    """The base checkpoint's tensors with the LoRA deltas (and modules_to_save tensors) applied on read."""

    def __init__(self, base: WeightIndex, base_format: str, adapter: LoraAdapter):
        self.base = base
        self.adapter = adapter
        canon = {(canonical_hf_name(n) if base_format == "hf" else n): n for n in base.infos()}

        def base_name(runtime: str, key: str) -> str:
            name = canonical_hf_name(runtime) if base_format == "hf" else runtime
            if name not in canon:
                raise CheckpointError(f"{adapter.weights}: tensor {key} targets {runtime}, which the base model "
                                      f"{base.folder} does not have")
            return canon[name]

        self.deltas: Dict[str, Tuple[str, str, float]] = {}
        for module, ab in adapter.pairs.items():
            target = base_name(module + ".weight", ab["A"])
            a, b = adapter.infos[ab["A"]].shape, adapter.infos[ab["B"]].shape
            want = base.infos()[target].shape
            if len(a) != 2 or len(b) != 2 or b[1] != a[0] or (b[0], a[1]) != tuple(want):
                raise CheckpointError(f"{adapter.weights}: {ab['B']} {tuple(b)} x {ab['A']} {tuple(a)} does not fit "
                                      f"{base.location(target)} {tuple(want)}")
            self.deltas[target] = (ab["A"], ab["B"], adapter.scale(module))
        self.replacements: Dict[str, str] = {}
        for param, key in adapter.replaced.items():
            target = base_name(param, key)
            if adapter.infos[key].shape != base.infos()[target].shape:
                raise CheckpointError(f"{adapter.weights}: tensor {key} has shape {adapter.infos[key].shape}, "
                                      f"{base.location(target)} {base.infos()[target].shape}")
            if target in self.deltas:
                raise CheckpointError(f"{adapter.weights}: {target} is both LoRA-adapted and saved whole")
            self.replacements[target] = key

    def infos(self) -> Dict[str, TensorInfo]:
        return self.base.infos()

    def location(self, name: str) -> str:
        return self.base.location(name)

    def sort_key(self, name: str):
        return (self.base.files.index(self.base.file_of(name)), name)

    def get(self, name: str):
        import torch

        if name in self.replacements:
            return self.adapter.get(self.replacements[name]).to(self.base.get(name).dtype)
        weight = self.base.get(name)
        if name not in self.deltas:
            return weight
        a_key, b_key, scale = self.deltas[name]
        lora_a, lora_b = self.adapter.get(a_key), self.adapter.get(b_key)
        half = weight.dtype in (torch.float16, torch.bfloat16)
        if half:  # as peft does on CPU: the delta in float32, cast back, added in the weight's dtype
            lora_a, lora_b = lora_a.float(), lora_b.float()
        delta = (lora_b @ lora_a) * scale
        return weight + delta.to(weight.dtype)


# ---- export ----------------------------------------------------------------------------------------------------
def _local_base(reference: Optional[str], adapter_folder: Path) -> Path:
    if not reference:
        raise CheckpointError(f"{adapter_folder}: the adapter names no base model; pass base= / --base DIR")
    base = Path(reference)
    if not base.is_dir():
        raise CheckpointError(f"base model {reference!r} (named by {adapter_folder}) is not a local folder; pass "
                              "base= / --base DIR with the base checkpoint")
    return base


def inspect_run(path, base=None) -> dict:
    """What :func:`export` would use: the checkpoint folder, its kind (``lora``/``full``) and the base."""
    folder = find_checkpoint(path)
    if (folder / ADAPTER_CONFIG).is_file():
        adapter = LoraAdapter(folder)
        base_dir = _local_base(str(base) if base else adapter.base_reference(), folder)
        return {"checkpoint": folder, "kind": "lora", "base": base_dir, "adapter": adapter}
    if _has_weights(folder):
        return {"checkpoint": folder, "kind": "full", "base": Path(base) if base else None, "adapter": None}
    _refuse_zero(folder)


def export(run_or_checkpoint, dst, format: str = "hf", base=None, *, code_from=None, overwrite: bool = False,
           max_shard_size=DEFAULT_MAX_SHARD_SIZE, progress: bool = False) -> Path:
    """Write a trained model (LoRA merged into its base, or a full checkpoint) to ``dst`` in ``format``.

    ``code_from``: where the remote-format modeling files come from (default: the checkpoint itself or its
    base, whichever is a remote-code checkpoint that holds them).  Returns ``dst``.
    """
    if format not in FORMATS:
        raise CheckpointError(f"format {format!r}: choose hf or remote")
    run = inspect_run(run_or_checkpoint, base)
    folder = run["checkpoint"]
    sources = [folder] + ([run["base"]] if run["base"] else [])
    check_destination(dst, sources + ([Path(code_from)] if code_from else []), overwrite)
    if run["kind"] == "lora":
        base_dir = run["base"]
        base_format = detect_format(base_dir)
        merged = MergedSource(WeightIndex(base_dir), base_format, run["adapter"])
        ckpt = open_checkpoint(base_dir, tensors=merged)
        if code_from is None and format == "remote" and base_format == "remote":
            code_from = base_dir
    else:
        ckpt = open_checkpoint(folder)
        if code_from is None and format == "remote":
            code_from = _code_source(folder, run["base"], ckpt.format)
    return write(ckpt, dst, format, code_from=code_from, overwrite=overwrite, max_shard_size=max_shard_size,
                 progress=progress, extra_sources=[p for p in sources if p != ckpt.path])


def _code_source(folder: Path, base: Optional[Path], fmt: str) -> Optional[Path]:
    """The folder whose remote modeling files a full checkpoint's remote export copies."""
    if fmt == "remote" and any(folder.glob("modeling_*.py")):
        return folder
    candidates = [base] if base else []
    reference = _args_json(folder).get("model")
    if reference and Path(reference).is_dir():
        candidates.append(Path(reference))
    for candidate in candidates:
        if candidate and any(Path(candidate).glob("modeling_*.py")):
            return Path(candidate)
    return None
