"""Token budget: frames first, then tiles, never part of an image, a clear error when nothing fits."""
import itertools

import pytest

from ivl3_plugin.template.budget import even_subset, plan_budget
from ivl3_plugin.template.errors import BudgetError
from ivl3_plugin.template.frames import frame_label
from ivl3_plugin.template.spec import TemplateSpec

TEXT, PER_FRAME, PER_TILE = 60, 9, 256


def length_of(indices, cap):
    return TEXT + len(indices) * (PER_FRAME + PER_TILE * cap)


def test_even_subset_spreads_over_the_whole_video():
    assert even_subset(16, 16) == list(range(16))
    assert even_subset(16, 4) == [2, 6, 10, 14]
    assert even_subset(16, 1) == [8]
    assert even_subset(5, 2) == [1, 3]
    for n, k in itertools.product(range(1, 40), range(1, 40)):
        if k > n:
            continue
        sub = even_subset(n, k)
        assert len(sub) == len(set(sub)) == k and sub == sorted(sub) and 0 <= sub[0] and sub[-1] < n
    with pytest.raises(ValueError):
        even_subset(4, 5)
    with pytest.raises(ValueError):
        even_subset(4, 0)


def test_no_budget_or_fitting_sample_is_untouched():
    plan = plan_budget(16, 2, None, length_of)
    assert plan.frame_indices == list(range(16)) and plan.tile_cap == 2 and not plan.reduced
    full = length_of(range(16), 2)
    plan = plan_budget(16, 2, full, length_of)
    assert not plan.reduced and plan.length == full


def test_frames_are_dropped_evenly_before_tiles():
    max_length = length_of(range(10), 2) + 5  # room for 10 frames at 2 tiles
    plan = plan_budget(16, 2, max_length, length_of, min_frames=4)
    assert len(plan.frame_indices) == 10 and plan.tile_cap == 2
    assert plan.frame_indices == even_subset(16, 10)
    assert plan.length == length_of(plan.frame_indices, 2) <= max_length
    assert plan.reduced and "16->10" in plan.describe()


def test_tiles_are_lowered_once_frames_reach_the_minimum():
    max_length = length_of(range(4), 3)  # 4 frames of 3 tiles fit, 4 frames of 6 do not
    plan = plan_budget(16, 6, max_length, length_of, min_frames=4)
    assert len(plan.frame_indices) == 4 and plan.tile_cap == 3
    assert plan.length <= max_length


def test_nothing_fits_raises_with_the_sample_id_and_the_numbers():
    with pytest.raises(BudgetError) as info:
        plan_budget(16, 1, length_of(range(2), 1) - 1, length_of, min_frames=2, sample_id="clip-7")
    err = info.value
    assert err.sample_id == "clip-7" and err.needed == length_of(range(2), 1)
    assert "clip-7" in str(err) and "max_length" in str(err)


@pytest.mark.parametrize("n,cap,min_frames", [(16, 1, 1), (16, 4, 2), (7, 3, 3), (32, 2, 8), (1, 1, 1)])
def test_plan_is_the_best_that_fits(n, cap, min_frames):
    """Brute force over every budget: the plan fits, and one more frame (or tile) would not."""
    for max_length in range(TEXT, length_of(range(n), cap) + 300, 37):
        try:
            plan = plan_budget(n, cap, max_length, length_of, min_frames=min_frames)
        except BudgetError:
            assert length_of(range(min(min_frames, n)), 1) > max_length
            continue
        k = len(plan.frame_indices)
        assert plan.length <= max_length
        if plan.tile_cap == cap and k < n:
            assert length_of(range(k + 1), cap) > max_length
        if plan.tile_cap < cap:
            assert k == min(min_frames, n) and length_of(range(k), plan.tile_cap + 1) > max_length


def test_frame_labels_match_between_training_and_inference():
    assert frame_label(1) == "Frame1: "
    assert frame_label(12, 3.14159) == "Frame12 (3.1s): "


def test_spec_run_settings_apply_to_the_named_template_only_and_are_validated(monkeypatch):
    args = {"x": {"timestamps": "1", "min_frames": "4", "on_overflow": "skip", "prompt": "detailed"},
            "other": {"min_frames": 9}}
    spec = TemplateSpec(name="x").for_run(args)
    assert spec.timestamps and spec.min_frames == 4 and spec.on_overflow == "skip" and spec.prompt == "detailed"
    assert TemplateSpec(name="y").for_run(args) == TemplateSpec(name="y")  # another template's settings stay there
    monkeypatch.setenv("IVL3_TEMPLATE_ARGS", '{"x": {"min_frames": 3}}')  # the process setting, read by for_run()
    assert TemplateSpec(name="x").for_run().min_frames == 3 and TemplateSpec(name="y").for_run().min_frames == 1
    with pytest.raises(ValueError, match="on_overflow"):
        TemplateSpec(name="x").with_run_args({"on_overflow": "truncate"})
    with pytest.raises(ValueError, match="template x: min_frames must be int"):
        TemplateSpec(name="x").with_run_args({"min_frames": "many"})
    with pytest.raises(ValueError, match="template x: 'frame_label' defines the template"):
        TemplateSpec(name="x").with_run_args({"frame_label": "F{i}"})
    with pytest.raises(ValueError, match="'min_frame' is not a field"):
        TemplateSpec(name="x").with_run_args({"min_frame": 2})
