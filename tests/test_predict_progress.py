"""``ivl3 predict`` without swift: LoRA checkpoints given as the model, progress while it runs, one-line failures.

The swift run itself is replaced by small real programs (a subprocess writing result rows as it
goes, one that dies with an exception) so progress and failure reporting are tested end to end
through ``run_with_progress``; the real ``swift infer`` is in tests/test_predict_swift_e2e.py.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ivl3_plugin.hosts.swift.infer import (PredictError, RowProgress, last_error, resolve_model,
                                            run_with_progress)

WRITER = """
import json, sys, time
out, n = sys.argv[1], int(sys.argv[2])
for k in range(n):
    time.sleep(0.35)
    with open(out, "a") as f:
        f.write(json.dumps({"response": f"pred {k}"}) + "\\n")
print("done", flush=True)
"""

CRASHER = """
import sys
print("loading the model ...")
print("Traceback (most recent call last):", file=sys.stderr)
print('  File "swift/infer.py", line 1, in <module>', file=sys.stderr)
print("ValueError: Please pass the LoRA checkpoint with --adapters", file=sys.stderr)
sys.exit(1)
"""


def _adapter(folder: Path, args_json=None, base=None) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base}))
    if args_json is not None:
        (folder / "args.json").write_text(json.dumps(args_json))
    return folder


def test_a_lora_checkpoint_given_as_the_model_becomes_the_adapter(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    ckpt = _adapter(tmp_path / "ckpt", {"model": str(base)})
    notes = []
    assert resolve_model(ckpt, [], notes) == (None, [ckpt])
    assert notes == [f"{ckpt} is a LoRA adapter checkpoint: passed to swift as --adapters "
                     f"(base model {base}, from its args.json)"]
    # a hub id in args.json is swift's business (it may be in the local hub cache)
    hub = _adapter(tmp_path / "hub", {"model": "OpenGVLab/InternVL3-1B"})
    assert resolve_model(hub, [], []) == (None, [hub])


def test_without_args_json_the_base_comes_from_adapter_config(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    ckpt = _adapter(tmp_path / "ckpt", base=str(base))
    assert resolve_model(ckpt, [], []) == (str(base), [ckpt])


@pytest.mark.parametrize("setup, message", [
    (lambda t: (_adapter(t / "ckpt"), []), "is a LoRA adapter checkpoint (adapter_config.json) with no args.json "
                                           "naming its base model: pass --model BASE_MODEL --adapters"),
    (lambda t: (_adapter(t / "ckpt", {"model": str(t / "gone")}), []), "its base model"),
    (lambda t: (_adapter(t / "ckpt", {"model": "x"}), [_adapter(t / "other", {"model": "x"})]),
     "is a LoRA adapter checkpoint (adapter_config.json), not a model; give the base model as --model"),
])
def test_what_to_pass_is_said_exactly(tmp_path, setup, message):
    model, adapters = setup(tmp_path)
    with pytest.raises(PredictError) as info:
        resolve_model(model, adapters, [])
    assert message in str(info.value)


def test_a_full_checkpoint_given_as_adapters_is_refused(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    with pytest.raises(PredictError, match=r"no adapter_config.json, so not a LoRA checkpoint; a full fine-tune's "
                                           r"checkpoint is the model: --model .*full"):
        resolve_model(None, [full], [])


def test_progress_follows_the_result_file_in_a_log(tmp_path, capsys):
    raw, log = tmp_path / "raw.jsonl", tmp_path / "run.log"
    code = run_with_progress([sys.executable, "-c", WRITER, str(raw), "4"], None, log, raw, 4, True, None)
    assert code == 0 and log.read_text().strip() == "done"
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("predict: 0/4 rows (0%)") and lines[-1].startswith("predict: 4/4 rows (100%)")
    assert all(l.startswith("predict: ") for l in lines) and len(lines) <= 6  # a few plain lines, no bar
    assert "\r" not in "".join(lines)


def test_progress_is_a_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = RowProgress(5, enabled=True, stream=stream)
    bar.update(2)
    bar.update(5)
    bar.close()
    text = stream.getvalue()
    assert "\r" in text and "predict" in text and "5/5" in text


def test_no_progress_prints_nothing(tmp_path, capsys):
    raw = tmp_path / "raw.jsonl"
    assert run_with_progress([sys.executable, "-c", WRITER, str(raw), "2"], None, tmp_path / "l", raw, 2, False,
                             None) == 0
    assert capsys.readouterr().err == ""


def test_a_failing_run_is_summarised_by_its_exception_line(tmp_path):
    log = tmp_path / "run.log"
    code = run_with_progress([sys.executable, "-c", CRASHER], None, log, tmp_path / "raw.jsonl", 3, False, None)
    assert code == 1
    assert last_error(log) == "ValueError: Please pass the LoRA checkpoint with --adapters"


def test_a_run_past_its_time_limit_is_stopped(tmp_path):
    raw = tmp_path / "raw.jsonl"
    with pytest.raises(PredictError, match="ran past the 1 s limit"):
        run_with_progress([sys.executable, "-c", WRITER, str(raw), "50"], None, tmp_path / "l", raw, 50, False, 1)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ivl3_plugin", "predict", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_cli_says_what_to_pass_for_an_adapter_without_base(tmp_path):
    ckpt = _adapter(tmp_path / "ckpt")
    ds = tmp_path / "val.jsonl"
    ds.write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "<video>\nx"},
                                                      {"role": "assistant", "content": "y"}],
                              "videos": [["/f.jpg"]]}) + "\n")
    proc = _cli("--model", ckpt, "--dataset", ds, "--out", tmp_path / "p.jsonl")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == (f"ivl3 predict: error: --model {ckpt} is a LoRA adapter checkpoint (adapter_config.json) with "
                    f"no args.json naming its base model: pass --model BASE_MODEL --adapters {ckpt}")
