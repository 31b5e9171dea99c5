"""``hosts/swift/host_ahead.py``: what ms-swift's loop asks the GPU per micro-batch, found on the batch's CPU copy.

Each part must give exactly what ms-swift computes, and must run on the device side with no data-dependent
op: the tests run that side on the ``meta`` device, where any op that needs a tensor's values (a boolean
index, ``.item()``, a copy to the CPU) raises, as it would wait on a GPU.
"""
from __future__ import annotations

import types

import pytest
import torch

from ivl3_plugin.hosts.swift import host_ahead
from ivl3_plugin.recipe import row_attention


def _labels(rows):
    return torch.tensor(rows, dtype=torch.long)


def _swift_prepare(labels, loss_scale=None):
    """ms-swift's own ``prepare_logits_to_keep`` on a copy of the batch."""
    from swift.trainers.mixin import SwiftMixin

    fake = types.SimpleNamespace(template=types.SimpleNamespace(sequence_parallel_size=1),
                                 args=types.SimpleNamespace(tuner_backend="peft"))
    inputs = {"labels": labels.clone()}
    if loss_scale is not None:
        inputs["loss_scale"] = loss_scale.clone()
    SwiftMixin.prepare_logits_to_keep(fake, inputs)
    return inputs


def _ours(labels, loss_scale=None, device="cpu"):
    single = labels.shape[0] == 1
    inputs = {"labels": labels.to(device)}
    if loss_scale is not None:
        inputs["loss_scale"] = loss_scale.to(device)
    host_ahead.apply_keep_plan(inputs, host_ahead.keep_plan(labels, loss_scale, single_row=single))
    return inputs


ONE_ROW = [[-100, -100, -100, 5, 6, -100, -100, 7, 8, 9]]
ROWS = [[-100, -100, 3, 4, 5, -100], [-100, -100, -100, -100, 8, 9]]


def test_one_row_keeps_the_positions_and_labels_ms_swift_keeps():
    labels, scale = _labels(ONE_ROW), torch.linspace(0, 1, 10)[None]
    theirs, ours = _swift_prepare(labels, scale), _ours(labels, scale)
    assert torch.equal(ours["labels"], theirs["labels"])
    assert torch.equal(ours["loss_scale"], theirs["loss_scale"])
    # ms-swift: a boolean mask over positions; ours: the indices of its True entries (the model gathers them)
    assert theirs["logits_to_keep"].dtype == torch.bool and ours["logits_to_keep"].dtype == torch.long
    assert torch.equal(ours["logits_to_keep"], theirs["logits_to_keep"].nonzero().flatten())
    hidden = torch.randn(1, 10, 4)
    assert torch.equal(hidden[:, ours["logits_to_keep"]], hidden[:, theirs["logits_to_keep"]])


def test_several_rows_keep_the_same_suffix():
    labels = _labels(ROWS)
    theirs, ours = _swift_prepare(labels), _ours(labels)
    assert ours["logits_to_keep"] == theirs["logits_to_keep"] == 5
    assert torch.equal(ours["labels"], theirs["labels"])


@pytest.mark.parametrize("rows", [ONE_ROW, ROWS])
def test_the_device_side_needs_no_value_of_a_device_tensor(rows):
    labels = _labels(rows)
    ours = _ours(labels, torch.ones(labels.shape), device="meta")  # raises on any op that reads values
    assert ours["labels"].device.type == "meta"
    with pytest.raises((NotImplementedError, RuntimeError)):  # ms-swift's own needs them: on a GPU it waits
        _swift_prepare(labels.to("meta"))


def test_token_counts_equal_ms_swift_token_accuracy():
    from swift.metrics.acc import compute_acc

    torch.manual_seed(0)
    logits = torch.randn(2, 6, 5)
    labels = _labels([[-100, -100, 1, 2, 3, -100], [-100, 4, 0, 0, 1, 2]])
    labels[0, 3] = logits[0, 2].argmax()  # one sure hit
    correct, total = host_ahead.token_counts(logits, labels)
    expected = compute_acc(logits.argmax(-1), labels)["token_acc"]
    assert (int(correct), int(total)) == (sum(expected), len(expected))
    assert host_ahead.token_counts(torch.randn(2, 6, 5, device="meta"), labels.to("meta")) is not None


def test_deferred_mean_reads_the_gpu_sums_once_and_resets():
    metric = host_ahead.deferred_mean_class()(nan_value=None, device="cpu")
    metric.update((torch.tensor(3), torch.tensor(4)))
    metric.update((torch.tensor(1), torch.tensor(4)))
    metric.update([True, False])  # ms-swift's own list form still works
    assert metric.compute() == {"value": pytest.approx(5 / 10)}
    metric.reset()
    assert metric.pending == [] and metric.compute() == {"value": None}


def test_send_ahead_keeps_cpu_copies_of_what_the_loop_reads():
    batch = {"input_ids": torch.ones(1, 4, dtype=torch.long), "labels": _labels([[-100, 1, 2, 3]]),
             "attention_mask": torch.ones(1, 4, dtype=torch.long), "pixel_values": torch.zeros(2, 3)}
    out = host_ahead.send_ahead(batch, "meta")
    assert all(out[k].device.type == "meta" for k in batch)
    host = out[host_ahead.HOST_KEY]
    assert set(host) == {"labels", "attention_mask"} and host["labels"] is batch["labels"]


def test_row_mask_takes_the_expected_spans_once_without_reading_the_device_mask():
    padded = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    kwargs = dict(mask_function=__import__("transformers.masking_utils").masking_utils.causal_mask_function,
                  q_length=5, kv_length=5, q_offset=0, kv_offset=0)
    row_attention.expect_spans(padded)
    spans = row_attention.row_mask(attention_mask=padded.to("meta").bool(), **kwargs)  # meta: values unreadable
    assert spans.tolist() == [[0, 5], [2, 3]]
    # used once: the next mask of that shape is read from the tensor itself
    assert row_attention.row_mask(attention_mask=padded.bool(), **kwargs).tolist() == [[0, 5], [2, 3]]
    with pytest.raises((NotImplementedError, RuntimeError)):
        row_attention.row_mask(attention_mask=padded.to("meta").bool(), **kwargs)


def test_the_models_use_of_the_kept_positions_and_frame_slots_needs_no_device_value():
    """What the model does with them, forward and backward: a gather by position indices (ms-swift's boolean
    mask is a data-dependent index), and ``masked_scatter`` of the frame features (the template's, both formats)."""
    hidden = torch.randn(1, 10, 4, device="meta", requires_grad=True)
    keep = host_ahead.keep_plan(_labels(ONE_ROW), None, single_row=True)["logits_to_keep"].to("meta")
    hidden[:, keep, :].sum().backward()
    assert hidden.grad.shape == hidden.shape
    with pytest.raises(NotImplementedError):
        hidden[:, torch.zeros(10, dtype=torch.bool, device="meta"), :]
    embeds, slots = torch.randn(1, 10, 4, device="meta"), torch.zeros(1, 10, 1, dtype=torch.bool, device="meta")
    assert embeds.masked_scatter(slots, torch.randn(6, 4, device="meta")).shape == embeds.shape
