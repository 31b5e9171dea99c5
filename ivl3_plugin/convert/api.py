"""The converter's Python API: read sources, plan, decode in parallel (resumably), write every format."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from ..shared.errors import InputError
from ..shared.layout import DEFAULT_NUM_FRAMES
from ..shared.prompts import render_instruction
from .cache import ImageOptions, default_cache_dir
from .manifest import ManifestWriter, load_results, shard_file
from .outputs import OUTPUT_FORMATS, write_all
from .planning import Item, build_plan, shard_of
from .runner import WorkConfig, run_items
from ..shared.sampling import Sampling
from .sources import SourceError, SourceRow, pick_source

PathLike = Union[str, os.PathLike]


def split_for_id(item_id: str, val_fraction: float) -> str:
    """Deterministic train/val split from the id alone (stable across runs, shards and machines)."""
    h = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


class ConvertError(InputError):
    """Options or inputs the converter cannot run with (named), or a run that converted nothing."""


@dataclass
class ConvertResult:
    out_dir: Path
    converted: int = 0
    skipped: List[dict] = field(default_factory=list)
    cache_hits: int = 0
    decoded: int = 0
    resumed: int = 0
    complete: bool = True  # False while other shards are unfinished (skipped: this shard's only)
    outputs: List[str] = field(default_factory=list)
    repaired: List[dict] = field(default_factory=list)  # cache entries found modified and decoded again
    warnings: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped


def read_sources(inputs: Sequence[PathLike], source: Optional[str] = None, registry=None, **opts) -> List[SourceRow]:
    rows: List[SourceRow] = []
    if source is None and (opts.get("video_key") or opts.get("summary_key")):
        source = "table"  # custom column names: the table source, whatever sniffing says
    for path in inputs:
        name, src = pick_source(Path(path), source, registry)
        got = list(src.read(Path(path), **{k: v for k, v in opts.items() if v is not None}))
        if not got:
            raise SourceError(f"{path}: no rows" + (" (no video files in the folder)" if Path(path).is_dir() else
                                                   f" (read as {name!r})"))
        rows.extend(got)
    return rows


def check_options(num_frames, sampling: str, fps: float, val_fraction: float, workers: int) -> None:
    """Refuse option values that would convert nothing useful (each named, with its allowed range)."""
    def bad(what: str) -> None:
        raise ConvertError(what)

    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        bad(f"num_frames must be a whole number >= 1, got {num_frames!r}")
    if sampling == "fps" and not (isinstance(fps, (int, float)) and fps > 0):
        bad(f"fps must be > 0, got {fps!r}")
    if not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        bad(f"val_fraction must be in [0, 1) (the share of ids held out for validation), got {val_fraction!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        bad(f"workers must be >= 0 (0: decode in this process), got {workers!r}")


def prepare_dir(path: Path, what: str) -> Path:
    """Create ``path`` (a folder) or say why it cannot be one: a file is in the way, no permission."""
    if path.exists() and not path.is_dir():
        raise ConvertError(f"{what} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvertError(f"{what} {path}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConvertError(f"{what} {path}: not writable")
    return path


def run_convert(inputs: Union[PathLike, Sequence[PathLike]], out_dir: PathLike, *, num_frames: int = DEFAULT_NUM_FRAMES,
                sampling: str = "segment", fps: float = 1.0, val_fraction: float = 0.2, prompt: str = "concise",
                image_format: str = "jpeg", quality: int = 90, max_short_side: Optional[int] = None,
                frame_size: Optional[int] = None, video_root: Optional[PathLike] = None,
                source: Optional[str] = None, workers: int = 0,
                shard: Tuple[int, int] = (0, 1), cache_dir: Optional[PathLike] = None,
                formats: Optional[Iterable[str]] = None, decoder: str = "auto", unique_summaries: bool = False,
                progress: bool = False, registry=None, **source_opts) -> ConvertResult:
    """Convert annotated videos into frames + dataset files under ``out_dir``.

    Safe to rerun (finished items are read from the manifest, decoded frames from the
    cache) and to run as ``shard=(i, N)`` on N nodes sharing ``out_dir``; the dataset
    files are written by whichever shard finishes last.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise ConvertError("no input files given")
    index, num_shards = shard
    if not (num_shards >= 1 and 0 <= index < num_shards):
        raise ConvertError(f"shard must be i/N with 0 <= i < N, got {index}/{num_shards}")
    check_options(num_frames, sampling, fps, val_fraction, workers)
    formats = list(formats) if formats is not None else available_formats()
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown:
        raise ConvertError(f"unknown output format(s) {unknown}; choose from {list(OUTPUT_FORMATS)}")
    try:
        samp = Sampling(sampling, num_frames, fps)
        image = ImageOptions(image_format, quality, max_short_side, frame_size)
    except ValueError as exc:
        raise ConvertError(str(exc)) from None
    instruction = render_instruction(prompt)
    cache_root = Path(cache_dir).absolute() if cache_dir else default_cache_dir()

    rows = read_sources(inputs, source, registry, **source_opts)  # bad input files fail before anything is written
    out = prepare_dir(Path(out_dir).absolute(), "output folder")
    prepare_dir(cache_root, "frame cache")
    options_sig = {"sampling": samp.key(), "image": image.key(), "decoder": decoder}
    items, plan_skips = build_plan(rows, Path(video_root).absolute() if video_root else None, options_sig,
                                   unique_summaries)
    previous = load_results(out)

    def finished(item: Item) -> bool:
        rec = previous.get(item.id)
        return bool(rec) and rec.get("signature") == item.signature

    mine = [it for it in items if shard_of(it.id, num_shards) == index]
    todo = [it for it in mine if not finished(it)]
    result = ConvertResult(out, resumed=len(mine) - len(todo))
    cfg = WorkConfig(samp, image, str(cache_root), str(out / "frames"), decoder)
    with ManifestWriter(shard_file(out, index, num_shards)) as log:
        def on_result(item: Item, rec: dict) -> None:
            log.append(rec)
            previous[item.id] = rec
            if rec["status"] != "ok":
                result.skipped.append({"file": item.row.file, "row": item.row.row, "id": item.id,
                                       "video": item.source, "reason": rec["reason"]})
            else:
                result.cache_hits += bool(rec.get("cache_hit"))
                result.decoded += not rec.get("cache_hit")
                if rec.get("cache_repaired"):
                    result.repaired.append({"id": item.id, "video": item.source, "reason": rec["cache_repaired"]})

        run_items(todo, cfg, workers, on_result, progress)

    if not all(finished(it) for it in items):
        result.complete = False  # other shards still running; the last one writes the dataset
        return result
    samples, skipped = _assemble(items, plan_skips, previous, instruction, val_fraction)
    train = [s for s in samples if s["split"] == "train"]
    if samples and not train:
        result.warnings.append(f"the train split is empty: all {len(samples)} converted rows fell in val "
                               f"(--val-fraction {val_fraction:g}); lower it or add rows")
    summary = {"converted": len(samples), "skipped": len(skipped), "inputs": [str(p) for p in inputs],
               "options": options_sig, "prompt": prompt, "instruction": instruction, "val_fraction": val_fraction,
               "train": len(train), "val": len(samples) - len(train),
               "train_rows": sum(len(s["summaries"]) for s in train),
               "formats": formats, "cache_repaired": result.repaired, "warnings": result.warnings}
    write_all(out, samples, skipped, formats, summary)
    result.converted, result.skipped, result.outputs = len(samples), skipped, formats
    if not samples:
        first = skipped[0] if skipped else None
        error = ConvertError(f"no row converted: all {len(skipped)} rows were skipped (reasons in "
                             f"{out / 'skipped.jsonl'}" + (f"; first: {Path(first['file']).name}:{first['row']}: "
                                                           f"{first['reason']}" if first else "") + ")")
        error.result = result  # the CLI lists the skipped rows before the error
        raise error
    return result


def _assemble(items, plan_skips, results, instruction, val_fraction):
    samples, skipped = [], [s.as_dict() for s in plan_skips]
    for it in items:
        rec = results[it.id]
        if rec["status"] != "ok":
            skipped.append({"file": it.row.file, "row": it.row.row, "id": it.id, "video": it.source,
                            "reason": rec["reason"]})
            continue
        samples.append({"id": it.id, "source": it.video or it.frames, "summary": it.summary,
                        "summaries": it.summaries or [it.summary], "frames": rec["frames"],
                        "timestamps": rec["timestamps"], "indices": rec["indices"], "fps": rec["fps"],
                        "clip": _clip_json(it.clip), "split": it.row.split or split_for_id(it.id, val_fraction),
                        "source_file": it.row.file, "source_row": it.row.row, "instruction": instruction})
    skipped.sort(key=lambda s: (s["file"], s["row"]))
    return samples, skipped


def _clip_json(clip):
    if not clip:
        return None
    return [clip[0], clip[1] if clip[1] != float("inf") else None]


def available_formats() -> List[str]:
    """Every output format whose library is installed (``hf`` needs ``datasets``)."""
    try:
        import datasets  # noqa: F401
    except ImportError:
        return [f for f in OUTPUT_FORMATS if f != "hf"]
    return list(OUTPUT_FORMATS)


def convert(annotations: Union[PathLike, Sequence[PathLike]], out_dir: PathLike, num_frames: int = DEFAULT_NUM_FRAMES,
            val_fraction: float = 0.2, prompt: str = "concise", quality: int = 90,
            video_root: Optional[PathLike] = None, **options) -> Path:
    """Convert and return the output folder (the demo's entry point); see :func:`run_convert`."""
    return run_convert(annotations, out_dir, num_frames=num_frames, val_fraction=val_fraction, prompt=prompt,
                       quality=quality, video_root=video_root, **options).out_dir
