"""The worked example ``examples/ivl3-dataset-example``, pip-installed: listed, converted, trained.

The package is copied to a temporary folder, built and installed with
``pip install --no-deps --no-build-isolation --target DIR`` and DIR is put on
``PYTHONPATH`` of every subprocess (``ivl3``, ``swift``): a real install found
through the ``ivl3_plugin`` entry-point group, while the shared virtualenv is
left untouched for the other test runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swift_cli import REPO, logged_losses, run_swift, swift_env
from test_plugins_entry_points import ivl3, pip_install_target

EXAMPLE = REPO / "examples" / "ivl3-dataset-example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("example")
    project = root / "src"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("sample", "build", "*.egg-info", "__pycache__"))
    pip_install_target(project, root / "site")
    return root / "site"


@pytest.fixture(scope="module")
def converted(tmp_path_factory, example_site) -> Path:
    out = tmp_path_factory.mktemp("converted") / "ds"
    proc = ivl3(["convert", str(EXAMPLE / "sample"), "--source", "sidecar-folder", "-o", str(out),
                 "--num-frames", "2", "--val-fraction", "0", "--formats", "swift,llamafactory", "--no-progress",
                 "-j", "1"], example_site)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


def test_installed_example_is_listed_by_ivl3_plugins(example_site):
    proc = ivl3(["plugins", "--json"], example_site)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    row = {r["name"]: r for r in out["plugins"]}["dataset-example"]
    assert row["version"] == "0.1.0" and row["builtin"] is False
    assert row["hooks"] == ["register_dataset_sources", "register_templates"]
    assert row["registered"] == ["dataset source:sidecar-folder", "template:ivl3_scene_notes"]
    assert not [e for e in out["errors"] if "dataset-example" in e]
    # the installed copy (not the repo's src/) is what was loaded, prompt file included
    assert list(example_site.glob("ivl3_dataset_example/prompts/scene_notes.j2"))


def test_example_own_tests_pass_against_the_installed_copy(example_site):
    env = dict(os.environ, PYTHONPATH=str(example_site))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          cwd=EXAMPLE, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout


def test_ivl3_convert_reads_the_folder_through_the_plugin_source(converted):
    rows = [json.loads(l) for l in (converted / "swift" / "train.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == 6
    assert by_id["shapes__blue_square_falling"]["messages"][1]["content"] == (
        "A blue square falls from the top to the bottom.")
    # the sidecar's "clip: 0.5-2.5" line reached the sampler
    ts = by_id["green_triangle_leftward"]["timestamps"][0]
    assert len(ts) == 2 and all(0.5 <= t <= 2.5 for t in ts), ts
    assert all(Path(f).is_file() for r in rows for f in r["videos"][0])
    info = json.loads((converted / "llamafactory" / "dataset_info.json").read_text())
    assert "ivl3_train" in info


@pytest.mark.e2e
def test_example_dataset_trains_the_tiny_model_through_swift_sft(converted, example_site, tiny_model, tmp_path):
    out = tmp_path / "out"
    env = swift_env(PYTHONPATH=os.pathsep.join([str(example_site), os.environ.get("PYTHONPATH", "")]).rstrip(":"))
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin",
        "--model", tiny_model, "--template", "ivl3_video", "--dataset", converted / "swift" / "train.jsonl",
        "--split_dataset_ratio", "0", "--tuner_type", "full", "--torch_dtype", "float32",
        "--max_steps", "3", "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--warmup_ratio", "0",
        "--per_device_train_batch_size", "2", "--logging_steps", "1", "--gradient_checkpointing", "false",
        "--save_strategy", "no", "--eval_strategy", "no", "--strict", "true",
        "--dataloader_num_workers", "0", "--report_to", "none", "--seed", "0", "--output_dir", out,
    ], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    losses = logged_losses(out)
    assert len(losses) >= 3 and all(l == l and l > 0 for l in losses), losses
    args = json.loads(next(out.rglob("args.json")).read_text())
    assert args["template"] == "ivl3_video"


def test_example_template_reaches_ms_swift_by_name(example_site):
    """What `--template ivl3_scene_notes` needs: the plugin's template in swift's registry."""
    code = ("from swift.utils import import_external_file\n"
            "from swift.template.register import TEMPLATE_MAPPING\n"
            "import_external_file('ivl3_plugin')\n"
            "print('registered', 'ivl3_scene_notes' in TEMPLATE_MAPPING, 'ivl3_video' in TEMPLATE_MAPPING)\n")
    env = swift_env(PYTHONPATH=os.pathsep.join([str(example_site), os.environ.get("PYTHONPATH", "")]).rstrip(":"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert "registered True True" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
