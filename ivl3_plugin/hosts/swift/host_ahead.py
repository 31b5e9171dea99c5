"""Keep the host ahead of the GPU: an ms-swift micro-batch with no wait on the GPU.

Why: the host launches a step's kernels ahead of the GPU, and the GPU stays busy while that queue lasts.
A call whose answer lives on the GPU (``.item()``, a boolean index, a blocking copy) makes the host wait
until the queue is empty, and the GPU then idles while the host queues work again.  ms-swift's training
loop does that several times per micro-batch; at 8B LoRA's micro-batch 1 the GPU idled 9 % of the step.
Every one of those answers is known on the CPU before the batch goes to the GPU, so this module takes
them from the batch's CPU copy instead:

* the batch goes to the GPU without waiting (from pinned memory), instead of one blocking copy per tensor;
* ``logits_to_keep`` (which positions get logits) and the labels cut to them, which ms-swift finds with a
  boolean index on the GPU (and the model then indexes with that mask: a wait in forward and backward);
* the row spans of the attention mask, for the attention that skips padding (``recipe/row_attention.py``,
  which would copy them from the GPU; at micro-batch 1 they say "no padding": no mask at all);
* token accuracy is summed on the GPU and read once per log line, not copied to the CPU per micro-batch;
* the NaN/inf filter of the logged loss (two waits per micro-batch) is turned off: a NaN loss shows.

The ``ivl3_compile`` callback installs it (run setting ``host_ahead``, default true); each part checks
that the run is the plain case it knows (one sequence-parallel rank, no padding-free packing) and leaves
anything else to ms-swift.  What the model computes is unchanged: the same positions, labels and masks.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

HOST_KEY = "ivl3_host"  # per batch: CPU copies of the tensors whose contents the loop needs to know
_HOST_FIELDS = ("labels", "loss_scale", "attention_mask")
ACC_KEY = "token_acc"
WRAPPED = ("_prepare_inputs", "prepare_logits_to_keep", "_compute_acc")  # the trainer methods install wraps

log = logging.getLogger("ivl3_plugin.swift")


# ---- the batch: CPU copies kept, the rest sent without waiting ---------------------------------------
def move_ahead(value, device):
    """``value`` (a tensor, or dicts/lists/tuples of them) on ``device``, copied without waiting on the GPU.
    A CPU tensor not in pinned memory is pinned first (a copy from pageable memory can wait for the GPU)."""
    import torch

    target = torch.device(device)
    if isinstance(value, dict):
        return type(value)({k: move_ahead(v, target) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return type(value)(move_ahead(v, target) for v in value)
    if isinstance(value, torch.Tensor) and value.device != target:
        if value.device.type == "cpu" and target.type == "cuda" and not value.is_pinned():
            value = value.pin_memory()
        return value.to(device=target, non_blocking=True)
    return value


def send_ahead(batch, device):
    """``batch`` moved with :func:`move_ahead`, plus ``HOST_KEY``: the CPU tensors of ``_HOST_FIELDS`` as
    they were."""
    import torch

    if not isinstance(batch, dict):
        return move_ahead(batch, device)
    host = {k: batch[k] for k in _HOST_FIELDS if isinstance(batch.get(k), torch.Tensor)}
    out = move_ahead(batch, device)
    out[HOST_KEY] = host
    return out


def loader_ahead(loader) -> Optional[str]:
    """Make ms-swift's ``DataLoaderShard`` send batches with :func:`send_ahead`; None when it is another
    loader (sequence parallel, iterable datasets), which then keeps its own copies."""
    from swift.dataloader import DataLoaderShard
    from torch.utils.data import DataLoader

    if type(loader) is not DataLoaderShard or not loader.device:
        return None

    class Ivl3AheadLoader(DataLoaderShard):
        def __iter__(self):
            for item in DataLoader.__iter__(self):
                yield send_ahead(item, self.device)

    loader.__class__ = Ivl3AheadLoader
    return "batches copied to the GPU without waiting"


# ---- what the loop needs to know, from the CPU copies ----------------------------------------------------
def keep_plan(labels, loss_scale, *, single_row: bool) -> Dict[str, Any]:
    """ms-swift's ``prepare_logits_to_keep``, computed on the CPU labels (``[B, T]``): the labels and
    ``loss_scale`` cut to the kept positions, and ``logits_to_keep``.  ``single_row`` is ms-swift's own test
    (one row, no model parallelism, not unsloth): then only positions before a label keep logits, given as
    their indices (the model indexes with them: a gather, where ms-swift's boolean mask waits on the GPU);
    else every position from the first label of any row on, as a count."""
    import torch
    from torch.nn.functional import pad

    out: Dict[str, Any] = {}
    if single_row:
        loss_mask = (labels != -100)[0]
        out["labels"] = pad(labels[:, loss_mask], (1, 0), value=-100)
        if loss_scale is not None:
            out["loss_scale"] = pad(loss_scale[:, loss_mask], (1, 0), value=0)
        out["logits_to_keep"] = torch.nonzero(pad(loss_mask[1:], (0, 1), value=True)).flatten()
    else:
        keep = labels.shape[-1] - int((labels != -100).int().argmax(-1).min()) + 1
        assert keep > 0
        out["keep_count"] = keep
    return out


def apply_keep_plan(inputs: Dict[str, Any], plan: Dict[str, Any]) -> None:
    """Put a :func:`keep_plan` into the GPU batch ``inputs`` (copies without waiting, views of a suffix)."""
    labels = inputs["labels"]
    if "keep_count" in plan:
        keep = plan["keep_count"]
        inputs["labels"] = labels[:, -keep:]
        if inputs.get("loss_scale") is not None:
            inputs["loss_scale"] = inputs["loss_scale"][:, -keep:]
        inputs["logits_to_keep"] = keep
        return
    device = labels.device
    inputs["labels"] = move_ahead(plan["labels"], device)
    if "loss_scale" in plan:
        inputs["loss_scale"] = move_ahead(plan["loss_scale"], device)
    inputs["logits_to_keep"] = move_ahead(plan["logits_to_keep"], device)


# ---- token accuracy, summed on the GPU ------------------------------------------------------------------
def token_counts(logits, labels):
    """(correct, labelled) of ms-swift's token accuracy, as GPU scalars: the prediction at position t
    against the label at t + 1, over labelled positions (``swift.metrics.acc.compute_acc``, 'token')."""
    preds = logits.argmax(dim=-1)[..., :-1]
    labels = labels[..., 1:]
    if preds.shape != labels.shape:
        return None
    real = labels != -100
    return ((preds == labels) & real).sum(), real.sum()


def deferred_mean_class():
    """ms-swift's ``MeanMetric`` that also takes (correct, labelled) GPU scalars and reads them at
    ``compute`` (once per log line) instead of at each ``update``."""
    from swift.metrics.utils import MeanMetric

    class DeferredMean(MeanMetric):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_state("pending", default_factory=list)

        def update(self, state):
            if isinstance(state, tuple) and len(state) == 2 and hasattr(state[0], "device"):
                self.pending.append(state)
                return
            super().update(state)

        def compute(self):
            if self.pending:
                import torch

                sums = torch.stack([torch.stack([c, n]) for c, n in self.pending]).sum(0).tolist()
                self.state += sums[0]
                self.count += int(sums[1])
                self.pending = []
            return super().compute()

    return DeferredMean


# ---- installing it on an ms-swift trainer ----------------------------------------------------------------
def install(trainer, loader) -> List[str]:
    """Wrap the trainer's ``_prepare_inputs``, ``prepare_logits_to_keep`` and ``_compute_acc`` and the
    train loader (see the module docstring).  Returns what was changed, for the log."""
    from swift.utils import is_mp

    from ...recipe.row_attention import expect_spans

    template = getattr(trainer, "template", None)
    if template is None or not all(hasattr(trainer, name) for name in WRAPPED):
        return [f"not an ms-swift trainer ({type(trainer).__name__}): its loop is left as it is"]
    done = []
    if loader is not None:
        line = loader_ahead(loader)
        if line:
            done.append(line)
    if getattr(template, "sequence_parallel_size", 1) > 1 or getattr(template, "padding_free", False):
        return done + ["sequence parallel or padding-free: ms-swift keeps its own logits_to_keep and masks"]

    prepare_inputs, prepare_keep, compute_acc = (trainer._prepare_inputs, trainer.prepare_logits_to_keep,
                                                 trainer._compute_acc)
    current: Dict[str, Any] = {}

    def _prepare_inputs(inputs):
        host = inputs.pop(HOST_KEY, None) if isinstance(inputs, dict) else None
        current["host"] = host
        try:
            inputs = prepare_inputs(inputs)
        finally:
            current["host"] = None
        mask = host.get("attention_mask") if host else None
        if mask is not None and mask.ndim == 2 and "attention_mask" in inputs:
            expect_spans(mask)
        return inputs

    def prepare_logits_to_keep(inputs):
        host = current.get("host")
        labels = inputs.get("labels")
        if not host or "labels" not in host or labels is None or tuple(host["labels"].shape) != tuple(labels.shape):
            return prepare_keep(inputs)
        scaled = inputs.get("loss_scale") is not None
        if scaled and "loss_scale" not in host:
            return prepare_keep(inputs)
        single = labels.shape[0] == 1 and not is_mp() and trainer.args.tuner_backend != "unsloth"
        loss_scale = host["loss_scale"] if scaled else None
        apply_keep_plan(inputs, keep_plan(host["labels"], loss_scale, single_row=single))

    deferred = deferred_mean_class()

    def _compute_acc(outputs, labels, cu_seqlens=None):
        if (trainer.task_type != "causal_lm" or trainer.args.acc_strategy != "token" or cu_seqlens is not None
                or template.is_encoder_decoder or labels is None or labels.is_floating_point()):
            return compute_acc(outputs, labels, cu_seqlens=cu_seqlens)
        counts = token_counts(outputs.logits, labels)
        if counts is None:
            return None
        metrics = trainer.custom_metrics["train" if trainer.model.training else "eval"]
        if not isinstance(metrics.get(ACC_KEY), deferred):
            metrics[ACC_KEY] = deferred(nan_value=None, device=trainer.args.device)
        metrics[ACC_KEY].update(counts)
        return None

    trainer._prepare_inputs = _prepare_inputs
    trainer.prepare_logits_to_keep = prepare_logits_to_keep
    trainer._compute_acc = _compute_acc
    done.append("logits_to_keep, padding and token accuracy from the batch's CPU copy")
    if getattr(trainer.args, "logging_nan_inf_filter", False):
        trainer.args.logging_nan_inf_filter = False
        done.append("logging_nan_inf_filter off (it asks the GPU every micro-batch; a NaN loss is logged as NaN)")
    return done
