"""``ivl3 train``: the exact launch for one node, many nodes and SLURM; errors; a real CPU run."""
from __future__ import annotations

import atexit
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from swift_cli import logged_losses, swift_env
from ivl3_plugin.cli import main
from ivl3_plugin.recipe.config import load_recipe
from ivl3_plugin.resources import recipes_dir


MODEL_DIR = tempfile.mkdtemp(prefix="ivl3-model-")  # a local checkpoint folder: recipes need one (not the hub)
DATA_FILE = Path(tempfile.mkdtemp(prefix="ivl3-data-")) / "train.jsonl"  # a converted dataset file
DATA_FILE.write_text("{}\n")
for _made in (MODEL_DIR, DATA_FILE.parent):  # made at import, so removed at exit
    atexit.register(shutil.rmtree, _made, True)


def with_inputs(argv):
    """A shipped GPU recipe names the hub model and a dataset placeholder: give a model folder and a dataset."""
    given = {a.split("=", 1)[0] for a in argv if "=" in a and not a.startswith("-")}
    if argv[0] == "tiny-cpu":
        return list(argv)
    return [*argv, *([f"model={MODEL_DIR}"] if "model" not in given else []),
            *([f"dataset=[{DATA_FILE}]"] if "dataset" not in given else [])]


def dry(capsys, *argv):
    rc = main(["train", *with_inputs(argv), "--dry-run"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    text = out.out
    env = dict(l.strip().split("=", 1) for l in text.split("argv:")[0].splitlines()[1:] if "=" in l)
    argv = [l[2:] for l in text.split("argv:\n")[1].split("command:")[0].splitlines()]
    return env, argv, out.err


def flag(argv, name):
    return argv[argv.index(name) + 1]


def test_single_node_uses_nproc_per_node_only(capsys):
    env, argv, _ = dry(capsys, "internvl3-8b-full")
    assert env["NPROC_PER_NODE"] == "8" and "NNODES" not in env and "MASTER_ADDR" not in env
    assert argv[1:2] == ["sft"] and argv[0].endswith("swift") or argv[1:4] == ["-m", "swift.cli.main", "sft"]
    assert flag(argv, "--deepspeed") == "zero1" and flag(argv, "--gradient_accumulation_steps") == "4"
    assert flag(argv, "--template") == "ivl3_video" and flag(argv, "--check_model") == "false"
    assert "IVL3_TEMPLATE_ARGS" not in env  # the recipe keeps the template's own settings


def test_multi_node_sets_torchrun_env_and_keeps_the_global_batch(capsys):
    env, argv, err = dry(capsys, "internvl3-8b-full", "--nodes", "2", "--node-rank", "1",
                         "--master-addr", "10.1.2.3", "--master-port", "29400", "dataset=[ivl3-demo]",
                         "learning_rate=1e-5")
    assert {k: env[k] for k in ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")} == {
        "NPROC_PER_NODE": "8", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29400"}
    assert flag(argv, "--gradient_accumulation_steps") == "2"  # 4 x 16 GPUs x 2 = 128
    assert "4 x 16 x 2" in err
    assert flag(argv, "--dataset") == "ivl3-demo" and flag(argv, "--learning_rate") == "1e-5"


def test_user_batch_split_wins_and_the_new_global_batch_is_reported(capsys):
    env, argv, err = dry(capsys, "internvl3-1b-lora", "--gpus", "2", "gradient_accumulation_steps=8")
    assert flag(argv, "--gradient_accumulation_steps") == "8" and env["NPROC_PER_NODE"] == "2"
    assert "global batch is 64" in err


def test_cpu_recipe_runs_as_one_process(capsys):
    env, argv, _ = dry(capsys, "tiny-cpu")
    assert "NPROC_PER_NODE" not in env and env["CUDA_VISIBLE_DEVICES"] == ""
    assert flag(argv, "--model").endswith("tiny-internvl3")  # 'ivl3-tiny' resolved, not built in a dry run


def test_a_registered_dataset_name_stays_a_name_beside_a_folder_of_that_name(capsys, tmp_path, monkeypatch):
    """``make demo`` writes its output to ./ivl3-demo; training from there must still mean the dataset."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ivl3-demo").mkdir()
    (tmp_path / "mine.jsonl").write_text("{}\n")
    _, argv, _ = dry(capsys, "tiny-cpu", "dataset=[ivl3-demo, ivl3-demo#20, mine.jsonl]")
    i = argv.index("--dataset")
    assert argv[i + 1:i + 4] == ["ivl3-demo", "ivl3-demo#20", str(tmp_path / "mine.jsonl")]


def test_slurm_script_launches_every_node_with_its_rank(capsys):
    rc = main(["train", *with_inputs(["internvl3-78b-full"]), "--slurm", "--dry-run", "--sbatch-arg=--partition=gpu"])
    script = capsys.readouterr().out
    assert rc == 0
    assert "#SBATCH --nodes=4" in script and "#SBATCH --gpus-per-node=8" in script
    assert "#SBATCH --partition=gpu" in script and "export NPROC_PER_NODE=8" in script
    assert 'NODE_RANK="$SLURM_NODEID"' in script and "scontrol show hostnames" in script
    srun = next(l for l in script.splitlines() if l.startswith("srun "))
    words = shlex.split(srun)
    cmd = words[words.index("ivl3-node") + 1:]
    assert cmd[cmd.index("sft") + 1:][:2] == ["--model", MODEL_DIR]
    assert flag(cmd, "--deepspeed") == "zero3" and flag(cmd, "--gradient_accumulation_steps") == "2"


def test_slurm_writes_an_executable_script(tmp_path, capsys):
    out = tmp_path / "job.sbatch"
    assert main(["train", *with_inputs(["internvl3-38b-lora"]), "--slurm", "--nodes", "2", "--sbatch-out", str(out)]) == 0
    assert out.stat().st_mode & 0o111 and "#SBATCH --nodes=2" in out.read_text()
    assert "sbatch" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["internvl3-8b-full", "--nodes", "2"], "need --master-addr"),
    (["no-such-recipe"], "known recipes: internvl3-14b-full"),
    (["internvl3-8b-full", "learning_rate=fast"], "field 'learning_rate'"),
    (["internvl3-8b-full", "tuner_type=qlora"], "field 'tuner_type'"),
    (["internvl3-8b-full", "--nodes", "2", "--master-addr", "h", "--node-rank", "2"], "outside 0..1"),
])
def test_bad_launches_are_refused_with_the_reason(argv, message, capsys):
    assert main(["train", *with_inputs(argv), "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_recipe_by_path_and_list(tmp_path, capsys):
    from ivl3_plugin.resources import recipes_dir

    src = (recipes_dir() / "internvl3-2b-lora.yaml").read_text()
    mine = tmp_path / "mine.yaml"
    mine.write_text(src.replace("OpenGVLab/InternVL3-2B", MODEL_DIR))
    env, argv, _ = dry(capsys, str(mine))
    assert flag(argv, "--model") == MODEL_DIR
    assert main(["train", "--list"]) == 0
    assert "internvl3-78b-lora" in capsys.readouterr().out


def test_llamafactory_host_missing_is_a_clear_error(monkeypatch, capsys):
    import ivl3_plugin.hosts

    monkeypatch.setitem(sys.modules, "ivl3_plugin.hosts.llamafactory", None)  # as if the package were absent
    monkeypatch.setitem(sys.modules, "ivl3_plugin.hosts.llamafactory.host", None)  # (an earlier test may hold it)
    monkeypatch.delattr(ivl3_plugin.hosts, "llamafactory", raising=False)  # an earlier test may have imported it
    assert main(["train", "tiny-cpu", "--host", "llamafactory", "--dry-run"]) == 2
    assert "host 'llamafactory' cannot load" in capsys.readouterr().err


@pytest.mark.e2e
def test_tiny_recipe_trains_end_to_end_on_cpu(tmp_path, tiny_model, demo_annotations):
    """``ivl3 train tiny-cpu`` through the real ms-swift CLI: losses logged, our template and dataset used."""
    import subprocess

    from ivl3_plugin.convert import convert

    home = tmp_path / "home"
    convert(demo_annotations, home / "datasets" / "demo", num_frames=2)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "ivl3_plugin", "train", "tiny-cpu", f"model={tiny_model}", "max_steps=3",
            "save_steps=3", f"output_dir={out}"]
    proc = subprocess.run(argv, cwd=tmp_path, env=swift_env(IVL3_HOME=home), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "ivl3 train:" in proc.stderr and " sft " in proc.stderr  # the command it ran, printed first
    args = json.loads(next(out.rglob("args.json")).read_text())
    assert args["template"] == "ivl3_video" and args["dataset"] == ["ivl3-demo"]
    shipped = load_recipe(recipes_dir() / "tiny-cpu.yaml").args
    assert args["max_steps"] == 3 and args["per_device_train_batch_size"] == shipped["per_device_train_batch_size"]
    assert len(logged_losses(out)) == 3


@pytest.mark.e2e
def test_plain_swift_sft_reads_a_recipe_file(tmp_path, tiny_model, demo_annotations):
    """``swift sft recipes/tiny-cpu.yaml`` with no ivl3 launcher: the file alone is a valid ms-swift config."""
    from swift_cli import run_swift
    from ivl3_plugin.convert import convert
    from ivl3_plugin.resources import recipes_dir

    home = tmp_path / "home"
    convert(demo_annotations, home / "datasets" / "demo", num_frames=2)
    out = tmp_path / "out"
    proc = run_swift("sft", [recipes_dir() / "tiny-cpu.yaml", "--model", tiny_model, "--max_steps", "2",
                             "--save_steps", "2", "--output_dir", out], cwd=tmp_path,
                     env=swift_env(IVL3_HOME=home, CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    args = json.loads(next(out.rglob("args.json")).read_text())
    assert args["template"] == "ivl3_video" and args["learning_rate"] == 3e-3 and args["max_steps"] == 2
    assert len(logged_losses(out)) == 2


@pytest.mark.parametrize("argv, message", [
    (["tiny-cpu", "learning_rat=0.01"], "field 'learning_rat': not an argument of `swift sft`; did you mean 'learning_rate'?"),
    (["internvl3-8b-lora", f"dataset=[{DATA_FILE}]"], "huggingface-cli download OpenGVLab/InternVL3-8B --local-dir"),
    (["internvl3-8b-lora", f"model={MODEL_DIR}"], "field 'dataset': <your converted dataset: dataset=DIR/swift/train.jsonl> is the recipe's placeholder"),
    (["tiny-cpu", "dataset=[no-such-data.jsonl]"], "'no-such-data.jsonl' is neither a registered dataset"),
    (["tiny-cpu", "model=./no/such/model"], "'./no/such/model' is not a local folder: no such folder"),
    (["tiny-cpu", "--gpus", "0"], "--gpus and --nodes must be at least 1 (got --gpus 0"),
    (["internvl3-8b-lora", f"model={MODEL_DIR}", f"dataset=[{DATA_FILE}]", "--nodes", "0"], "must be at least 1"),
    (["tiny-cpu", "max_steps=0"], "field 'max_steps': 0 trains nothing"),
    (["tiny-cpu", "learning_rate=0"], "field 'learning_rate': must be > 0"),
    (["tiny-cpu", "template.on_overflow=truncate"], "on_overflow must be 'error' or 'skip'"),
    (["tiny-cpu", "template.frame_labels=x"], "'frame_labels' is not a field"),
])
def test_what_would_run_differently_or_fail_late_is_refused_before_launch(argv, message, capsys):
    """Typos ms-swift would prefix-match, a hub id, the recipe's dataset placeholder, missing paths, zero counts."""
    assert main(["train", *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_typo_in_a_recipe_file_is_caught_by_recipe_check_too(tmp_path, capsys):
    src = (recipes_dir() / "tiny-cpu.yaml").read_text().replace("learning_rate:", "learning_rat:")
    mine = tmp_path / "mine.yaml"
    mine.write_text(src)
    assert main(["recipe", "check", str(mine)]) == 1
    assert "field 'learning_rat': not an argument of `swift sft`; did you mean 'learning_rate'?" in capsys.readouterr().err


def test_relative_paths_are_made_absolute_so_the_run_is_usable_from_anywhere(tmp_path, monkeypatch, capsys):
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    env, argv, _ = dry(capsys, "tiny-cpu", "model=models/m", "dataset=[data/train.jsonl]", "output_dir=out/run")
    assert flag(argv, "--model") == str(tmp_path / "models" / "m")
    assert flag(argv, "--dataset") == str(tmp_path / "data" / "train.jsonl")
    assert flag(argv, "--output_dir") == str(tmp_path / "out" / "run")


def test_template_run_settings_travel_keyed_by_the_recipes_template(capsys):
    env, argv, _ = dry(capsys, "tiny-cpu", "template.on_overflow=skip", "template.max_tiles_image=6")
    assert json.loads(env["IVL3_TEMPLATE_ARGS"]) == {"ivl3_video": {"max_tiles_image": 6, "on_overflow": "skip"}}


def test_a_newline_in_an_sbatch_argument_is_refused(capsys):
    argv = with_inputs(["internvl3-78b-full"])
    assert main(["train", *argv, "--slurm", "--dry-run", "--sbatch-arg", "--partition=gpu\nrm -rf /"]) == 2
    assert "holds a line break" in capsys.readouterr().err
