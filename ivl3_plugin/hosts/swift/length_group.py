"""``ivl3_length_group``: ms-swift trains on length-grouped micro-batches (``ivl3_plugin.recipe.length_group``).

Why our own and not ``--group_by_length``: ms-swift's needs a ``lengths`` column, so for a multimodal
dataset it turns lazy encoding off and fully encodes every sample once before the first step (every frame
read and tiled) only to keep its length, then encodes it again while training.  Our template
knows a sample's token count from its text and frame count alone (:meth:`Ivl3VideoTemplate.ivl3_length`:
the budget plan, no pixels for one-tile frames), so the rows stay lazy and only the order changes.

How it is wired: the callback is built with the trainer, before ``train()`` asks for its dataloader;
it wraps the trainer's ``get_train_dataloader`` so that the batch sampler ms-swift builds there is ours
(same constructor arguments: micro-batch, drop_last, data_seed), for that call only.  ms-swift's
DataLoaderShard calls ``set_epoch`` on it every epoch, so each epoch regroups.  Anything it cannot
honour stops the run with the reason instead of training unsorted.  The planned lengths are cached
(``ivl3_plugin.recipe.length_cache``) under a key of the rows and :func:`template_fingerprint`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List

from ...recipe.length_cache import cached_lengths
from ...recipe.length_group import DEFAULT_WINDOW, LENGTH_GROUP_CALLBACK, grouped_micro_steps, rank_batches
from .callbacks import CompileError, run_settings

log = logging.getLogger("ivl3_plugin.swift")


class LengthGroupError(CompileError):
    """``ivl3_length_group`` cannot apply to this run; the message says why and what to change."""


class GroupedBatchSampler:
    """Batches of sample indices for one rank, regrouped every epoch (``set_epoch``)."""

    def __init__(self, lengths: List[int], batch_size: int, *, seed: int, drop_last: bool, window: int,
                 rank: int = 0, world_size: int = 1):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.drop_last, self.window, self.rank, self.world_size = drop_last, window, rank, world_size
        self.epoch = 0
        self._len = len(self._batches())  # the same count every epoch: it depends on the lengths' count only

    def _batches(self) -> List[List[int]]:
        steps = grouped_micro_steps(self.lengths, self.batch_size, seed=self.seed, epoch=self.epoch,
                                    world_size=self.world_size, window=self.window, drop_last=self.drop_last)
        return rank_batches(steps, self.rank, self.world_size)

    def __iter__(self):
        yield from self._batches()

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def dataset_lengths(dataset, template) -> List[int]:
    """Each training row's token count: ms-swift's ``lengths`` column when the rows were encoded before
    training, else our template's planned length of each raw row (the lazy dataset's source rows)."""
    columns = getattr(dataset, "column_names", None) or []
    if "lengths" in columns:
        return [max(x) if isinstance(x, list) else int(x) for x in dataset["lengths"]]
    rows = getattr(dataset, "dataset", None)
    if rows is None or not hasattr(template, "ivl3_length"):
        raise LengthGroupError(f"--callbacks {LENGTH_GROUP_CALLBACK} needs the template ivl3_video (or a "
                               f"pre-encoded dataset with a 'lengths' column); got template "
                               f"{type(template).__name__} and dataset {type(dataset).__name__}")
    t0 = time.perf_counter()
    stat_frames = getattr(getattr(template, "spec", None), "max_tiles_per_frame", 2) > 1
    lengths, path, hit = cached_lengths(rows, template_fingerprint(template), template.ivl3_length,
                                        stat_frames=stat_frames)
    how = f"read from cache {path}" if hit else "planned"
    log.warning("ivl3 length group: %d sample lengths %s in %.1fs (min %d, max %d tokens)", len(lengths), how,
                time.perf_counter() - t0, min(lengths, default=0), max(lengths, default=0))
    return lengths


def template_fingerprint(template) -> Dict[str, Any]:
    """What decides a planned length besides the row: the tokenizer's content, the template's plain settings
    (every public str/int/float/bool attribute: max_length, truncation_strategy, num_image_token, mode...),
    its meta (system prompt, chat layout), its run spec (frames, tiles, labels) and the prompt file's text.
    Taking every plain attribute rather than a hand-picked few means a setting added later is not missed;
    the cost is an occasional needless miss (e.g. padding_side), never a stale hit."""
    plain = {k: v for k, v in vars(template).items()
             if not k.startswith("_") and (v is None or isinstance(v, (str, int, float, bool)))}
    spec = getattr(template, "spec", None)
    tokenizer = getattr(template, "tokenizer", None)
    return {"class": f"{type(template).__module__}.{type(template).__qualname__}", "versions": _versions(),
            "settings": plain, "loss_scale": getattr(template, "_loss_scale", None),
            "meta": repr(getattr(template, "template_meta", None)), "spec": repr(spec),
            "prompt": _prompt_digest(spec), "tokenizer": None if tokenizer is None else tokenizer_digest(tokenizer)}


def _versions() -> Dict[str, str]:
    """ivl3-plugin's and ms-swift's versions: an upgrade may encode differently (bump ``CACHE_VERSION``
    in ``recipe/length_cache.py`` when a change here alters a planned length within one version)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("ivl3-plugin", "ms-swift"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = ""
    return out


def tokenizer_digest(tokenizer) -> str:
    """A fast tokenizer's full serialisation (vocabulary, merges, normaliser, added tokens) hashed, else its
    vocabulary and init settings: the same tokenizer copied elsewhere still hits, a changed one never does."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        body = backend.to_str()
    else:  # a slow (Python) tokenizer: its vocabulary, init settings and vocabulary files (scores, merges)
        folder = Path(str(getattr(tokenizer, "name_or_path", "")))
        files = [folder / n for n in (getattr(tokenizer, "vocab_files_names", None) or {}).values()]
        body = json.dumps([sorted(tokenizer.get_vocab().items()), getattr(tokenizer, "init_kwargs", {}),
                           [hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()]],
                          sort_keys=True, default=repr)
    body = f"{type(tokenizer).__qualname__}/{len(tokenizer)}/{body}"
    return hashlib.sha256(body.encode()).hexdigest()


def _prompt_digest(spec) -> str:
    """The prompt file's text (an edited ``<prompt>.j2`` changes every length)."""
    if spec is None:
        return ""
    from ...shared.prompts import prompt_dirs

    for folder in prompt_dirs(spec.prompt_dir):
        path = folder / f"{spec.prompt}.j2"
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()
    return ""


def _rank_world():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def length_group_callback_class():
    """The callback class, built on ms-swift's base (imported here, so the core never needs swift)."""
    import swift.trainers.mixin as swift_mixin
    from swift.callbacks.base import TrainerCallback

    class Ivl3LengthGroupCallback(TrainerCallback):
        def __init__(self, args, trainer):
            super().__init__(args, trainer)
            self.window = run_settings(LENGTH_GROUP_CALLBACK).get("window", DEFAULT_WINDOW)
            template = getattr(trainer, "template", None)
            if getattr(template, "padding_free", False):
                raise LengthGroupError(f"--callbacks {LENGTH_GROUP_CALLBACK} groups padded batches; with "
                                       "--padding_free/--packing there is no padding to remove: drop one of them")
            if getattr(template, "sequence_parallel_size", 1) > 1:
                raise LengthGroupError(f"--callbacks {LENGTH_GROUP_CALLBACK} does not apply to sequence "
                                       "parallelism (ms-swift builds that dataloader itself)")
            if not getattr(args, "train_dataloader_shuffle", True):
                raise LengthGroupError(f"--callbacks {LENGTH_GROUP_CALLBACK} shuffles within length windows: it "
                                       "needs --train_dataloader_shuffle true")
            self.sampler = None
            original = trainer.get_train_dataloader

            def grouped_dataloader(*a, **k):
                made = []

                def sampler(total_samples, batch_size, *, shuffle=True, drop_last=False, data_seed=None,
                            tp_size=1, **_):
                    if tp_size != 1:
                        raise LengthGroupError(f"--callbacks {LENGTH_GROUP_CALLBACK}: not with tensor parallelism")
                    rank, world = _rank_world()
                    lengths = dataset_lengths(trainer.train_dataset, trainer.template)
                    made.append(GroupedBatchSampler(lengths, batch_size, seed=data_seed or 0, drop_last=drop_last,
                                                    window=self.window, rank=rank, world_size=world))
                    return made[-1]

                saved = swift_mixin.BatchSamplerShard
                swift_mixin.BatchSamplerShard = sampler
                try:
                    loader = original(*a, **k)
                finally:
                    swift_mixin.BatchSamplerShard = saved
                if not made:
                    raise LengthGroupError(f"--callbacks {LENGTH_GROUP_CALLBACK}: ms-swift built this dataloader "
                                           "without its batch sampler (a streaming dataset?); nothing was grouped")
                self.sampler = made[-1]
                log.warning("ivl3 length group: micro-batches of %d grouped by length (window %d micro-steps)",
                            self.sampler.batch_size, self.window)
                return loader

            trainer.get_train_dataloader = grouped_dataloader

    return Ivl3LengthGroupCallback
