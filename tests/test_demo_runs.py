"""The demo scores the run it launched: run again into the same output folder, it must not pick up an
earlier run's checkpoint (ms-swift gives each run a new ``v<N>-<time>`` folder, all saving the same step)
or that run's losses."""
import json

import pytest

from ivl3_plugin.checkpoint.export import find_checkpoint
from ivl3_plugin.demo import _losses, launched_run, run_folders


def _run(train_out, name, losses):
    run = train_out / name
    (run / "checkpoint-800").mkdir(parents=True)
    (run / "logging.jsonl").write_text("".join(json.dumps({"loss": x}) + "\n" for x in losses))
    return run


def test_the_launched_run_is_the_new_folder_not_an_earlier_one(tmp_path):
    train_out = tmp_path / "train"
    _run(train_out, "v0-20261207-010903", [6.0, 0.5])
    _run(train_out, "v1-20261207-085550", [6.1, 0.4])
    earlier = run_folders(train_out)
    new = _run(train_out, "v2-20261207-120153", [6.2, 0.1])
    run = launched_run(train_out, earlier)
    assert run == new
    assert find_checkpoint(run) == new / "checkpoint-800"
    assert _losses(run) == [6.2, 0.1]


def test_a_launch_that_made_no_run_folder_or_several_is_an_error(tmp_path):
    train_out = tmp_path / "train"
    _run(train_out, "v0-a", [1.0])
    earlier = run_folders(train_out)
    with pytest.raises(RuntimeError, match="one run folder.*found none"):
        launched_run(train_out, earlier)
    _run(train_out, "v1-b", [1.0])
    _run(train_out, "v2-c", [1.0])
    with pytest.raises(RuntimeError, match="found v1-b, v2-c"):
        launched_run(train_out, earlier)


def test_an_output_folder_not_made_yet_has_no_runs(tmp_path):
    assert run_folders(tmp_path / "absent") == set()
