"""The spine: our package inside a real ``swift sft`` / ``swift infer`` run, from a foreign cwd."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from swift_cli import logged_losses, run_swift, swift_env


@pytest.fixture(scope="module")
def ivl3_home(tmp_path_factory, demo_annotations):
    """An IVL3_HOME whose demo dataset is converted (so ``--dataset ivl3-demo`` resolves)."""
    from ivl3_plugin.convert import convert

    home = tmp_path_factory.mktemp("ivl3home")
    convert(demo_annotations, home / "datasets" / "demo", num_frames=2, val_fraction=0.2)
    return home


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, ivl3_home):
    """Six full fine-tuning steps through the real CLI, run from an empty temporary cwd."""
    cwd = tmp_path_factory.mktemp("cwd")
    out = cwd / "out"
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin",
        "--model", tiny_model, "--template", "ivl3_video", "--dataset", "ivl3-demo",
        "--split_dataset_ratio", "0", "--tuner_type", "full", "--torch_dtype", "float32",
        "--max_steps", "6", "--learning_rate", "3e-3", "--lr_scheduler_type", "constant", "--warmup_ratio", "0",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--logging_steps", "1",
        "--gradient_checkpointing", "false",
        "--save_strategy", "steps", "--save_steps", "6", "--eval_strategy", "no",
        # a dataloader worker process must import the plugin too (swift replays plugin imports there)
        "--dataloader_num_workers", "1", "--report_to", "none", "--seed", "0", "--output_dir", out,
    ], cwd=cwd, env=swift_env(IVL3_HOME=ivl3_home))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out, proc


@pytest.mark.e2e
def test_custom_register_path_trains_with_our_template_and_dataset(trained):
    out, proc = trained
    args = json.loads(next(out.rglob("args.json")).read_text())
    assert args["template"] == "ivl3_video"  # a name only we register
    assert args["dataset"] == ["ivl3-demo"]  # likewise
    assert "ivl3_plugin" in args["custom_register_path"] + args["external_plugins"]
    losses = logged_losses(out)
    assert len(losses) >= 6, losses
    assert losses[-1] < losses[0] - 0.3, f"loss did not fall: {losses}"


@pytest.mark.e2e
def test_every_torchrun_rank_registers_the_plugin(tmp_path, tiny_model, ivl3_home):
    """Two CPU ranks through torchrun (gloo): each rank imports ``ivl3_plugin`` by name itself."""
    out = tmp_path / "out"
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin",
        "--model", tiny_model, "--template", "ivl3_video", "--dataset", "ivl3-demo",
        "--split_dataset_ratio", "0", "--tuner_type", "full", "--torch_dtype", "float32", "--ddp_backend", "gloo",
        "--max_steps", "2", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1",
        "--logging_steps", "1", "--save_strategy", "no", "--eval_strategy", "no", "--gradient_checkpointing", "false",
        "--dataloader_num_workers", "0", "--report_to", "none", "--output_dir", out,
    ], cwd=tmp_path, env=swift_env(IVL3_HOME=ivl3_home, NPROC_PER_NODE=2, MASTER_PORT=29533))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "torchrun" in proc.stdout + proc.stderr or "nproc_per_node" in proc.stdout + proc.stderr
    args = json.loads(next(out.rglob("args.json")).read_text())
    assert args["template"] == "ivl3_video" and args["global_world_size"] == 2
    assert len(logged_losses(out)) >= 2


@pytest.mark.e2e
def test_swift_infer_restores_the_plugin_from_args_json(trained, tmp_path, ivl3_home):
    """``swift infer --model <checkpoint>`` names no plugin: swift reads it back from args.json."""
    out, _ = trained
    ckpt = sorted(out.rglob("checkpoint-*"))[-1]
    result = tmp_path / "result.jsonl"
    proc = run_swift("infer", [
        "--model", ckpt, "--val_dataset", ivl3_home / "datasets/demo/swift/val.jsonl",
        "--max_new_tokens", "4", "--temperature", "0", "--result_path", result, "--max_batch_size", "2",
    ], cwd=tmp_path, env=swift_env(IVL3_HOME=ivl3_home))
    assert proc.returncode == 0, proc.stderr[-6000:]
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert rows and all("response" in r for r in rows)
    assert "ivl3_video" in (proc.stdout + proc.stderr)


def _python(code: str, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=swift_env(**env), timeout=300)


def test_import_hook_resolves_package_name_and_keeps_file_paths(tmp_path):
    plugin_file = tmp_path / "my_plugin.py"
    plugin_file.write_text("LOADED = 'file'\n")
    proc = _python(f"""
        from swift.utils import import_external_file
        from swift.template.register import TEMPLATE_MAPPING
        mod = import_external_file('ivl3_plugin')
        print('name', mod.__name__, 'ivl3_video' in TEMPLATE_MAPPING)
        again = import_external_file('ivl3_plugin')  # swift may import twice: must be harmless
        print('twice', again is mod)
        f = import_external_file({str(plugin_file)!r})
        print('file', f.LOADED)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "name ivl3_plugin True" in proc.stdout
    assert "twice True" in proc.stdout
    assert "file file" in proc.stdout


def test_import_hook_opt_out_restores_swift_behaviour():
    proc = _python("""
        from swift.utils import import_external_file
        try:
            import_external_file('ivl3_plugin')
        except Exception as exc:
            print('refused', type(exc).__name__)
    """, IVL3_NO_SWIFT_IMPORT_HOOK="1")
    assert "refused" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_external_plugins_file_form_registers():
    proc = _python("""
        import ivl3_plugin.hosts.swift.external_plugin as p, os
        from swift.utils import import_external_file
        from swift.template.register import TEMPLATE_MAPPING
        import_external_file(p.__file__)
        print('ok', 'ivl3_video' in TEMPLATE_MAPPING)
    """, IVL3_NO_SWIFT_IMPORT_HOOK="1")
    assert "ok True" in proc.stdout, proc.stderr[-3000:]


def test_core_imports_without_swift():
    """The core never imports a host: block ``swift`` and import every non-host module."""
    proc = _python("""
        import sys, importlib, pkgutil
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == 'swift' or name.startswith('swift.') or name.startswith('llamafactory'):
                    raise ImportError('blocked ' + name)
        sys.meta_path.insert(0, Block())
        import ivl3_plugin
        for m in pkgutil.walk_packages(ivl3_plugin.__path__, 'ivl3_plugin.'):
            if '.hosts.' in m.name or m.name.endswith('external_plugin'):
                continue
            importlib.import_module(m.name)
        from ivl3_plugin.plugins import get_plugins
        print('templates', get_plugins().templates.names())
    """, IVL3_NO_SWIFT_IMPORT_HOOK="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ivl3_video" in proc.stdout
