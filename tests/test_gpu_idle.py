"""The GPU benchmark's idle-time analysis (``benchmarks/gpu_idle.py``): gaps found between overlapping kernels,
sorted by size, and each long gap blamed on the synchronising call (and its Python line) that preceded it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from gpu_idle import HostOp, blame, call_site, from_profile, gaps, idle_report  # noqa: E402


def test_gaps_merge_overlapping_kernels_of_several_streams():
    kernels = [(0, 10), (5, 20), (25, 30), (30, 31), (100, 110), (101, 102)]
    assert gaps(kernels) == [(20, 25), (31, 100)]


def test_long_gap_is_blamed_on_the_sync_that_returned_as_the_gpu_ran_dry():
    item_site = ["swift/trainers/mixin.py(781): clip_grad_norm_", "transformers/trainer.py(2760): _clip"]
    ops = [
        HostOp("aten::item", 900, 1000, item_site),
        HostOp("aten::_local_scalar_dense", 950, 999, item_site),  # same call, inner op: the outer one wins
        HostOp("aten::mm", 1100, 1200, ["model.py(10): forward"]),
        HostOp("aten::nonzero", 100, 150, ["early.py(1): f"]),  # long before the gap: not its cause
    ]
    assert blame((1000, 3000), ops) == "after aten::item: " + " < ".join(item_site)
    # no sync near the gap: the innermost host op running at its middle
    busy = [HostOp("aten::add", 0, 9000, ["outer.py(3): step"]), HostOp("aten::mul", 4000, 6000, ["inner.py(7): f"])]
    assert blame((4500, 5500), busy) == "host busy: inner.py(7): f"
    assert blame((4500, 5500), []) == "host outside any profiled op (Python between ops)"


def test_report_splits_idle_by_gap_size_and_ranks_causes_by_time():
    kernels = [(i * 15, i * 15 + 10) for i in range(100)]  # 99 gaps of 5 us: launch-bound
    kernels += [(3000, 3100), (8100, 8200), (9000, 9010)]  # gaps 1505 (after the item), 5000, 800
    ops = [HostOp("aten::item", 1000, 1500, ["a.py(1): loss_item"]),
           HostOp("aten::nonzero", 3050, 3100, ["b.py(2): select"]),
           HostOp("aten::linear", 8300, 8900, ["c.py(3): forward"])]
    rep = idle_report(kernels, ops)
    sizes = rep["by_gap_size"]
    assert sizes["< 20 us (launch-bound)"]["gaps"] == 99
    assert sizes["< 20 us (launch-bound)"]["ms"] == pytest.approx(99 * 5 / 1e3)
    assert sizes["> 2 ms"]["gaps"] == 1 and sizes["0.2-2 ms"]["gaps"] == 2
    assert rep["idle_ms"] == pytest.approx((99 * 5 + 1505 + 5000 + 800) / 1e3)
    causes = [(c["cause"], c["gaps"], c["ms"]) for c in rep["long_gaps_by_cause"]]
    assert causes[0] == ("after aten::nonzero: b.py(2): select", 1, 5.0)
    assert causes[1] == ("after aten::item: a.py(1): loss_item", 1, pytest.approx(1.505))
    assert causes[2] == ("host busy: c.py(3): forward", 1, 0.8)


def test_call_site_skips_torch_frames_and_shortens_paths():
    stack = ["/x/site-packages/torch/nn/modules/module.py(1750): _call_impl",
             "/x/site-packages/swift/trainers/mixin.py(781): clip_grad_norm_",
             "/x/site-packages/transformers/trainer.py(2760): _clip", "/x/run.py(1): main"]
    assert call_site(stack) == "swift/trainers/mixin.py(781): clip_grad_norm_ < transformers/trainer.py(2760): _clip"
    assert call_site([]) == "(no Python frame)"


def _loss_item(x):
    return (x @ x).sum().item()


def test_from_profile_gives_each_op_its_python_stack():
    with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
        _loss_item(torch.randn(32, 32))
    kernels, ops = from_profile(prof)
    assert kernels == []  # CPU only
    item = next(o for o in ops if o.name == "aten::item")
    assert item.stack[0].endswith("_loss_item") and "test_gpu_idle.py" in item.stack[0]
    assert "test_gpu_idle.py" in blame((item.end - 1, item.end + 500), ops)


def test_sync_sites_count_each_waiting_call_once_by_line():
    ops = [HostOp("aten::item", 0, 10, ["a.py(1): f"]), HostOp("aten::_local_scalar_dense", 1, 9, ["a.py(1): f"]),
           HostOp("aten::item", 20, 30, ["a.py(1): f"]), HostOp("aten::nonzero", 40, 50, ["b.py(2): g"]),
           HostOp("cudaStreamSynchronize", 42, 48), HostOp("aten::mm", 60, 70, ["c.py(3): h"])]
    rep = idle_report([], ops)
    assert rep["syncs_by_site"] == [{"site": "aten::item: a.py(1): f", "calls": 2},
                                    {"site": "aten::nonzero: b.py(2): g", "calls": 1},
                                    {"site": "cudaStreamSynchronize: b.py(2): g", "calls": 1}]


def test_call_site_skips_torch_frames_given_relative_to_site_packages():
    # the profiler names frames relative to site-packages when it can
    stack = ["torch/optim/adam.py(802): _fused_adam", "torch/optim/optimizer.py(500): wrapper",
             "transformers/trainer.py(2760): _step"]
    assert call_site(stack, depth=1) == "transformers/trainer.py(2760): _step"


def test_a_wait_in_backward_is_named_by_its_autograd_node():
    # backward runs on the engine's thread with no Python frame of its own: the node's name is what says which
    # forward op made the wait (here masked_scatter, whose source gradient is a masked_select of unknown size)
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)[:, None].expand(8, 4)
    source = torch.randn(8, 4, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
        torch.zeros(8, 4).masked_scatter(mask, source).sum().backward()
    _, ops = from_profile(prof)
    select = next(o for o in ops if o.name == "aten::masked_select")
    assert select.stack[0] == "backward of MaskedScatterBackward0"
    assert call_site(select.stack, depth=1) == "backward of MaskedScatterBackward0"


def test_a_sync_named_op_that_starts_inside_the_gap_is_not_its_cause():
    # the host waited in .item() until the GPU ran dry at 1000, then read the batch's CPU copy (a nonzero on a
    # CPU tensor: no wait) before queuing the next kernels at 3000: the item is the cause, not the nonzero
    ops = [HostOp("aten::item", 400, 1010, ["timer.py(5): counted"]),
           HostOp("aten::nonzero", 1500, 1600, ["host_ahead.py(85): keep_plan"])]
    assert blame((1000, 3000), ops) == "after aten::item: timer.py(5): counted"
    # with no wait in progress at the gap's start, the host line running at its middle
    assert blame((1000, 3000), ops[1:]) == "host outside any profiled op (Python between ops)"
