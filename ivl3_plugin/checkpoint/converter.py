"""Convert InternVL3 checkpoints between the remote-code and the transformers-native (-hf) format.

``to_hf(src, dst)`` / ``to_remote(src, dst, code_from=...)`` / ``convert(src, dst, "hf"|"remote")``.

Everything is checked before anything is written: the source format, every shard the index names,
every source tensor against the shapes its config implies, the mapping (every source tensor lands
exactly once, every target tensor is filled, shapes match the target config), the tokenizer and the
remote code files.  Then the result is written into a temporary folder beside ``dst`` and renamed into
place, so a refused or failed conversion never leaves a (half-written) ``dst``.

Memory: tensors are streamed.  Output shards (``max_shard_size``, default 5 GB) are filled one at a
time from memory-mapped source shards, each tensor read, renamed / split / concatenated and released,
so converting InternVL3-78B (~160 GB in bf16) needs about one output shard of RAM, not 2x the model.
Tensors keep their dtype and bytes (bit-identical round trips).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from . import configs as cfg
from .errors import CheckpointError
from .mapping import (canonical_hf_name, check_against_spec, hf_spec, plan_hf_to_remote, plan_identity,
                      plan_remote_to_hf, remote_spec, run_step, target_infos)
from .assets import load_tokenizer, write_generation_config, write_hf_assets, write_remote_assets
from .tokenizer_files import has_tokenizer, token_id
from .weights import DEFAULT_MAX_SHARD_SIZE, TensorInfo, TensorSource, WeightIndex, dominant_dtype, parse_size, \
    write_shards

FORMATS = ("hf", "remote")
REMOTE_ARCH, HF_ARCH = "InternVLChatModel", "InternVLForConditionalGeneration"
LOOKED_FOR = (f"config.json with architectures {REMOTE_ARCH} / model_type internvl_chat (remote code) or "
              f"{HF_ARCH} / model_type internvl (transformers -hf)")


# ---- reading ------------------------------------------------------------------------------------------------
def read_config(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder (looked for an InternVL checkpoint: {LOOKED_FOR})")
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json (looked for an InternVL checkpoint: {LOOKED_FOR})")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{path}: not JSON ({exc})") from None


def format_of_config(config: dict) -> Optional[str]:
    archs = config.get("architectures") or []
    if REMOTE_ARCH in archs or config.get("model_type") == "internvl_chat":
        return "remote"
    if HF_ARCH in archs or config.get("model_type") == "internvl":
        return "hf"
    return None


def detect_format(folder) -> str:
    """``"remote"`` or ``"hf"``; a :class:`CheckpointError` naming the folder and what was looked for otherwise."""
    config = read_config(Path(folder))
    found = format_of_config(config)
    if found is None:
        raise CheckpointError(f"{folder}: neither InternVL format (config.json has architectures "
                              f"{config.get('architectures')} and model_type {config.get('model_type')!r}; "
                              f"looked for {LOOKED_FOR})")
    return found


class CanonicalSource(TensorSource):
    """A source's tensors under canonical names (-hf in-memory spellings -> saved layout), minus dropped ones."""

    def __init__(self, inner: TensorSource, fmt: str):
        self.inner = inner
        self.original: Dict[str, str] = {}
        for name in inner.infos():
            canon = canonical_hf_name(name) if fmt == "hf" else name
            if canon in self.original:
                raise CheckpointError(f"tensors {inner.location(self.original[canon])} and {inner.location(name)} "
                                      "are the same tensor under two spellings")
            self.original[canon] = name
        self._infos = {c: inner.infos()[o] for c, o in self.original.items()}

    def drop(self, name: str) -> None:
        self._infos.pop(name)
        self.original.pop(name)

    def infos(self) -> Dict[str, TensorInfo]:
        return self._infos

    def location(self, name: str) -> str:
        return self.inner.location(self.original.get(name, name))

    def get(self, name: str):
        return self.inner.get(self.original[name])

    def sort_key(self, name: str):
        inner = self.inner
        original = self.original[name]
        if isinstance(inner, WeightIndex):
            return (inner.files.index(inner.file_of(original)), name)
        key = getattr(inner, "sort_key", None)
        return key(original) if key else (0, name)


@dataclass
class Checkpoint:
    """A readable InternVL checkpoint: its format, config, normalised description and tensors."""

    path: Path
    format: str
    config: dict
    desc: cfg.ModelDesc
    tensors: CanonicalSource
    tokenizer_dir: Path
    notes: List[str] = field(default_factory=list)


def open_checkpoint(folder, tensors: Optional[TensorSource] = None, tokenizer_dir: Optional[Path] = None,
                    check_tensors: bool = True) -> Checkpoint:
    """Read and validate a checkpoint folder (``tensors`` replaces its weights, e.g. LoRA-merged ones)."""
    folder = Path(folder)
    fmt = detect_format(folder)
    config = read_config(folder)
    where = str(folder / "config.json")
    desc = cfg.describe_remote(config, where) if fmt == "remote" else cfg.describe_hf(config, where)
    source = CanonicalSource(tensors if tensors is not None else WeightIndex(folder), fmt)
    tok_dir = Path(tokenizer_dir or folder)
    if has_tokenizer(tok_dir):
        found = token_id(tok_dir, "<IMG_CONTEXT>")
        if fmt == "hf" and desc.image_token_id is not None and found is not None and found != desc.image_token_id:
            raise CheckpointError(f"{where}: image_token_id is {desc.image_token_id} but the tokenizer in {tok_dir} "
                                  f"has <IMG_CONTEXT> = {found}")
        if desc.image_token_id is None:
            desc.image_token_id = found
    if desc.dtype is None:
        desc.dtype = dominant_dtype(source.infos().values())
    ckpt = Checkpoint(folder, fmt, config, desc, source, tok_dir)
    if check_tensors:
        _untie_duplicate(ckpt)
        spec = remote_spec(desc) if fmt == "remote" else hf_spec(desc)
        check_against_spec(source.infos(), spec, f"{folder}", where=source.location)
    return ckpt


def _untie_duplicate(ckpt: Checkpoint) -> None:
    """A tied model's file may also hold ``lm_head`` (a copy of the embedding): accounted for, not written."""
    head, embed = "language_model.lm_head.weight", "language_model.model.embed_tokens.weight"
    infos = ckpt.tensors.infos()
    if not ckpt.desc.tie_word_embeddings or head not in infos or embed not in infos:
        return
    import torch

    if not torch.equal(ckpt.tensors.get(head), ckpt.tensors.get(embed)):
        raise CheckpointError(f"{ckpt.path}: the config ties word embeddings but tensor {ckpt.tensors.location(head)} "
                              "differs from the embedding; set tie_word_embeddings to false in config.json")
    ckpt.tensors.drop(head)
    ckpt.notes.append("lm_head equals the tied embedding: written once, as the embedding")


# ---- destination ----------------------------------------------------------------------------------------------
def check_destination(dst, sources: List[Path], overwrite: bool) -> Path:
    dst = Path(dst)
    d = dst.resolve()
    for src in sources:
        s = Path(src).resolve()
        if d == s or s in d.parents:
            raise CheckpointError(f"destination {dst} is inside the source {src}; write it elsewhere")
        if d in s.parents:
            raise CheckpointError(f"the source {src} is inside the destination {dst}; write it elsewhere")
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise CheckpointError(f"{dst} exists (pass overwrite=True / --overwrite to replace it)")
        if not dst.is_dir():
            raise CheckpointError(f"{dst} exists and is not a folder")
    return dst


@contextlib.contextmanager
def atomic_output(dst: Path):
    """A temporary folder beside ``dst``, renamed to ``dst`` when the block succeeds, removed when it fails."""
    dst = Path(dst).absolute()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.ivl3-tmp-", dir=dst.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        yield tmp
        if dst.exists():
            old = dst.parent / f".{dst.name}.ivl3-old-{uuid.uuid4().hex[:8]}"
            os.rename(dst, old)
            os.rename(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- code files for the remote format -----------------------------------------------------------------------
def resolve_code_from(code_from) -> tuple:
    """(folder, its remote config or None, the .py files to copy), checked against the auto_map they serve."""
    folder = Path(code_from)
    if not folder.is_dir():
        raise CheckpointError(f"--code-from {folder}: no such folder (it must hold the remote modeling files, e.g. "
                              "the original OpenGVLab checkpoint)")
    config = None
    if (folder / "config.json").is_file():
        data = read_config(folder)
        if format_of_config(data) == "remote":
            config = data
    auto_map = (config or {}).get("auto_map") or cfg.REMOTE_AUTO_MAP
    files = sorted(p for p in folder.glob("*.py") if p.is_file())
    names = {p.name for p in files}
    for ref in auto_map.values():
        module = ref.split(".")[0] + ".py"
        if module not in names:
            raise CheckpointError(f"--code-from {folder}: {module} is missing (auto_map names {ref})")
    return folder, config, files


# ---- writing --------------------------------------------------------------------------------------------------
def plan(ckpt: Checkpoint, fmt: str) -> tuple:
    """(steps, target infos in write order) for writing ``ckpt`` as ``fmt``; fully checked, nothing read."""
    names = sorted(ckpt.tensors.infos(), key=ckpt.tensors.sort_key)
    where = ckpt.tensors.location
    if fmt == ckpt.format:
        steps = plan_identity(names)
    elif fmt == "hf":
        steps = plan_remote_to_hf(names, where)
    else:
        steps = plan_hf_to_remote(names, where)
    infos = target_infos(steps, ckpt.tensors.infos(), where)
    desc = ckpt.desc
    if desc.image_token_id is None:
        raise CheckpointError(f"{ckpt.tokenizer_dir}: no tokenizer with an <IMG_CONTEXT> token (tokenizer.json / "
                              "vocab.json + tokenizer_config.json)")
    spec = hf_spec(desc) if fmt == "hf" else remote_spec(desc)
    check_against_spec(infos, spec, f"{fmt} target")
    order = []
    for step in steps:
        for target in step.targets:
            order.append((target, infos[target]))
    return steps, order


def write(ckpt: Checkpoint, dst, fmt: str, *, code_from=None, overwrite: bool = False,
          max_shard_size=DEFAULT_MAX_SHARD_SIZE, progress: bool = False, extra_sources: List[Path] = ()) -> Path:
    """Write an opened checkpoint to ``dst`` in ``fmt`` (``"hf"`` or ``"remote"``), atomically."""
    if fmt not in FORMATS:
        raise CheckpointError(f"format {fmt!r}: choose hf or remote")
    code = None
    if fmt == "remote":
        if code_from is None:
            if ckpt.format != "remote":
                raise CheckpointError("the remote format needs its modeling files: pass code_from / --code-from "
                                      "(a folder holding them, e.g. the original OpenGVLab checkpoint)")
            code_from = ckpt.path
        code = resolve_code_from(code_from)
    sources = [ckpt.path, ckpt.tokenizer_dir, *extra_sources] + ([code[0]] if code else [])
    dst = check_destination(dst, sources, overwrite)
    steps, order = plan(ckpt, fmt)
    step_of = {t: s for s in steps for t in s.targets}
    tok = load_tokenizer(ckpt.tokenizer_dir, fmt)
    if fmt == "remote":
        config = cfg.render_remote(ckpt.desc, code[1] or (ckpt.config if ckpt.format == "remote" else None))
    max_bytes = parse_size(max_shard_size)

    with atomic_output(dst) as tmp:
        write_shards(tmp, order, lambda t: run_step(step_of[t], t, ckpt.tensors.get), max_shard_size=max_bytes,
                     progress=progress, description=f"{ckpt.path.name} -> {fmt}")
        if fmt == "hf":
            config = cfg.render_hf(ckpt.desc, tmp / ".config-scratch")
            shutil.rmtree(tmp / ".config-scratch")
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
        if fmt == "hf":
            write_hf_assets(tok, tmp, ckpt.desc)
        else:
            write_remote_assets(tok, tmp, code)
        write_generation_config(ckpt, tok, tmp)
    return dst


def convert(src, dst, fmt: str, *, code_from=None, overwrite: bool = False, max_shard_size=DEFAULT_MAX_SHARD_SIZE,
            progress: bool = False) -> Path:
    """Convert the checkpoint folder ``src`` into ``dst`` in ``fmt`` (same format: a normalising rewrite)."""
    if fmt not in FORMATS:
        raise CheckpointError(f"format {fmt!r}: choose hf or remote")
    src = Path(src)
    check_destination(dst, [src] + ([Path(code_from)] if code_from else []), overwrite)
    ckpt = open_checkpoint(src)
    return write(ckpt, dst, fmt, code_from=code_from, overwrite=overwrite, max_shard_size=max_shard_size,
                 progress=progress)


def to_hf(src, dst, *, overwrite: bool = False, max_shard_size=DEFAULT_MAX_SHARD_SIZE, progress: bool = False) -> Path:
    """Write the InternVL3 checkpoint ``src`` (either format) as a transformers-native -hf folder ``dst``."""
    return convert(src, dst, "hf", overwrite=overwrite, max_shard_size=max_shard_size, progress=progress)


def to_remote(src, dst, code_from=None, *, overwrite: bool = False, max_shard_size=DEFAULT_MAX_SHARD_SIZE,
              progress: bool = False) -> Path:
    """Write ``src`` (either format) as a remote-code folder ``dst``; modeling files come from ``code_from``
    (default: ``src`` itself when it is a remote checkpoint)."""
    return convert(src, dst, "remote", code_from=code_from, overwrite=overwrite, max_shard_size=max_shard_size,
                   progress=progress)
