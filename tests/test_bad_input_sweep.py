"""The bad-input sweep: every case through the real CLI (``python -m ivl3_plugin ...`` in a subprocess).

Each case asserts the exit status (2: the user's input; 1 only where documented: some rows skipped),
a one-line ``ivl3 COMMAND: error: ...`` message naming the file, row, field or option, and no
"Traceback" anywhere in stdout or stderr.  The converter's per-row cases are in
tests/test_convert_bad_input.py and tests/test_convert_typed_inputs.py; the CLI's handling of a real
bug (exit 70, one line, the traceback in a file) is tested at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional

import pytest

from fixtures.convert.videos import write_jsonl

PRED = {"id": "clip_a", "reference": "A red circle moves right.", "prediction": "A red circle moves."}
ROW = {"id": "a", "messages": [{"role": "user", "content": "<video>\nSummarise."},
                               {"role": "assistant", "content": "A red circle."}], "videos": [["/f/0.jpg"]]}


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sweep")
    (d / "empty.jsonl").write_bytes(b"")
    (d / "header.csv").write_text("video,summary\n")
    (d / "dict.json").write_text(json.dumps({"videos": ["a.mp4"], "note": "not a list of rows"}))
    (d / "latin.jsonl").write_bytes(b'{"video": "a.mp4", "summary": "ok"}\n{"video": "b.mp4", "summary": "caf\xe9"}\n')
    (d / "latin.csv").write_bytes(b"video,summary\na.mp4,caf\xe9\n")
    (d / "emptylist.json").write_text("[]")
    (d / "emptydir").mkdir()
    write_jsonl(d / "cols.jsonl", [{"clip": "a.mp4", "words": "a summary"}])
    write_jsonl(d / "ann.jsonl", [{"video": "missing.mp4", "summary": "a summary"}])
    write_jsonl(d / "gone.jsonl", [{"id": "a", "video": "gone-a.mp4", "summary": "x"},
                                   {"id": "b", "video": "gone-b.mp4", "summary": "y"}])
    (d / "notes.txt").write_text("video: a.mp4\n")
    (d / "afile").write_text("a file, not a folder\n")
    (d / "ro").mkdir()
    os.chmod(d / "ro", 0o555)
    (d / "locked.jsonl").write_text(json.dumps({"video": "a.mp4", "summary": "x"}) + "\n")
    os.chmod(d / "locked.jsonl", 0o000)
    write_jsonl(d / "p.jsonl", [PRED])
    write_jsonl(d / "other.jsonl", [dict(PRED, id="clip_z")])
    write_jsonl(d / "float_id.jsonl", [PRED, dict(PRED, id=1.5)])
    write_jsonl(d / "dict_id.jsonl", [dict(PRED, id={"video": "a"})])
    write_jsonl(d / "list_pred.jsonl", [dict(PRED, prediction=["a", "b"])])
    (d / "pretty.json").write_text(json.dumps(PRED, indent=2))
    (d / "latin_p.jsonl").write_bytes(b'{"id": "a", "reference": "caf\xe9", "prediction": "x"}\n')
    (d / "preds_dir").mkdir()
    write_jsonl(d / "ds.jsonl", [ROW])
    (d / "ds_latin.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    (d / "model").mkdir()
    (d / "model" / "config.json").write_text("{}")
    (d / "lora").mkdir()
    (d / "lora" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    yield d
    os.chmod(d / "ro", 0o755)
    os.chmod(d / "locked.jsonl", 0o644)


class Case(NamedTuple):
    name: str
    argv: List[str]  # "{d}" is the fixture folder
    message: str  # expected in the error line ("{d}" likewise)
    code: int = 2
    unprivileged: bool = False  # needs file permissions to apply (root runs it without the override capability)
    env: Optional[dict] = None
    extra_lines: bool = False  # other stderr lines allowed before the error (the skipped rows it lists)


CONVERT = ["convert", "--no-progress", "-j", "0", "--cache-dir", "{d}/cache"]
CASES = [
    # ivl3 convert: annotation files
    Case("convert-missing-file", CONVERT + ["{d}/nowhere.jsonl", "-o", "{d}/o"], "{d}/nowhere.jsonl: no such file"),
    Case("convert-empty-file", CONVERT + ["{d}/empty.jsonl", "-o", "{d}/o"], "empty.jsonl: no rows (the file is empty)"),
    Case("convert-header-only-csv", CONVERT + ["{d}/header.csv", "-o", "{d}/o"],
         "header.csv: no rows (only a header line)"),
    Case("convert-json-dict", CONVERT + ["{d}/dict.json", "-o", "{d}/o"],
         "dict.json: expected a JSON list of rows, or an object with a list under 'data' / 'annotations' / "
         "'samples' / 'items'; got an object with keys 'videos', 'note'"),
    Case("convert-jsonl-not-utf8", CONVERT + ["{d}/latin.jsonl", "-o", "{d}/o"], "latin.jsonl:2: not UTF-8 (byte 0xe9)"),
    Case("convert-csv-not-utf8", CONVERT + ["{d}/latin.csv", "-o", "{d}/o"], "latin.csv:2: not UTF-8 (byte 0xe9)"),
    Case("convert-empty-json-list", CONVERT + ["{d}/emptylist.json", "-o", "{d}/o"],
         "emptylist.json: no rows (an empty list)"),
    Case("convert-empty-folder", CONVERT + ["{d}/emptydir", "-o", "{d}/o"],
         "emptydir: no rows (no video files in the folder)"),
    Case("convert-no-known-columns", CONVERT + ["{d}/cols.jsonl", "-o", "{d}/o"],
         "cols.jsonl: no video column (looked for video, video_path, path, file, filename); no summary column "
         "(looked for summary, caption, text, description); have: clip, words"),
    Case("convert-column-typo", CONVERT + ["{d}/cols.jsonl", "-o", "{d}/o", "--video-key", "clip", "--summary-key",
                                           "word"], "cols.jsonl: column 'word' (--summary-key) not found (have: clip, words)"),
    Case("convert-unknown-suffix", CONVERT + ["{d}/notes.txt", "-o", "{d}/o"],
         "notes.txt: not an annotation file ivl3 reads (.csv, .tsv, .json, .jsonl, or a folder of videos)"),
    Case("convert-unknown-source", CONVERT + ["{d}/ann.jsonl", "-o", "{d}/o", "--source", "nope"],
         "--source nope: no dataset source named 'nope'; known: folder, "),
    Case("convert-unknown-prompt", CONVERT + ["{d}/ann.jsonl", "-o", "{d}/o", "--prompt", "nope"],
         "no prompt file nope.j2"),
    Case("convert-unreadable-file", CONVERT + ["{d}/locked.jsonl", "-o", "{d}/o"],
         "{d}/locked.jsonl: Permission denied", unprivileged=True),
    Case("convert-every-row-skipped", CONVERT + ["{d}/gone.jsonl", "-o", "{d}/o-gone"],
         "no row converted: all 2 rows were skipped (reasons in {d}/o-gone/skipped.jsonl; first: gone.jsonl:1: "
         "video file not found)", extra_lines=True),
    # ivl3 convert: options and output folders
    Case("convert-val-fraction-2", CONVERT + ["{d}/ann.jsonl", "-o", "{d}/o", "--val-fraction", "2"],
         "argument --val-fraction: 2 is out of range: must be in [0, 1)"),
    Case("convert-num-frames-0", CONVERT + ["{d}/ann.jsonl", "-o", "{d}/o", "--num-frames", "0"],
         "argument --num-frames: 0 is out of range: must be >= 1"),
    Case("convert-negative-workers", ["convert", "{d}/ann.jsonl", "-o", "{d}/o", "-j", "-2"],
         "argument -j/--workers: -2 is out of range: must be >= 0"),
    Case("convert-bad-shard", CONVERT + ["{d}/ann.jsonl", "-o", "{d}/o", "--shard", "2"],
         "--shard wants i/N (e.g. 0/4), got '2'"),
    Case("convert-output-is-a-file", CONVERT + ["{d}/ann.jsonl", "-o", "{d}/afile"],
         "output folder {d}/afile: exists and is not a folder"),
    Case("convert-output-read-only", CONVERT + ["{d}/ann.jsonl", "-o", "{d}/ro/out"],
         "output folder {d}/ro/out: cannot create it (Permission denied)", unprivileged=True),
    Case("convert-cache-is-a-file", ["convert", "--no-progress", "{d}/ann.jsonl", "-o", "{d}/o", "--cache-dir",
                                     "{d}/afile"], "frame cache {d}/afile: exists and is not a folder"),
    # ivl3 eval
    Case("eval-missing-file", ["eval", "{d}/nowhere.jsonl"], "{d}/nowhere.jsonl: no such predictions file"),
    Case("eval-folder", ["eval", "{d}/preds_dir"], "preds_dir: not a file"),
    Case("eval-empty-file", ["eval", "{d}/empty.jsonl"], "empty.jsonl: no rows"),
    Case("eval-not-utf8", ["eval", "{d}/latin_p.jsonl"], "latin_p.jsonl:1: not UTF-8 (byte 0xe9)"),
    Case("eval-float-id", ["eval", "{d}/float_id.jsonl"],
         "float_id.jsonl:2, field 'id': id must be a string or an integer, got a number (1.5)"),
    Case("eval-object-id", ["eval", "{d}/dict_id.jsonl"],
         "dict_id.jsonl:1, field 'id': id must be a string or an integer, got an object"),
    Case("eval-list-prediction", ["eval", "{d}/list_pred.jsonl"],
         "list_pred.jsonl:1, field 'prediction': expected a string, got a list (2 items)"),
    Case("eval-pretty-json-object", ["eval", "{d}/pretty.json"],
         "pretty.json:1: not valid JSON (Expecting property name enclosed in double quotes); a predictions file is "
         "JSONL (one object per line) or a JSON list"),
    Case("eval-baseline-no-common-id", ["eval", "{d}/p.jsonl", "--baseline", "{d}/other.jsonl", "--out", "{d}/x.json"],
         "no common ids: {d}/other.jsonl shares no id with {d}/p.jsonl"),
    Case("eval-out-is-a-folder", ["eval", "{d}/p.jsonl", "--out", "{d}/emptydir"],
         "--out {d}/emptydir: is a folder (give a file name)"),
    Case("eval-out-read-only", ["eval", "{d}/p.jsonl", "--out", "{d}/ro/s.json"],
         "--out {d}/ro/s.json: cannot write in {d}/ro (permission denied)", unprivileged=True),
    Case("eval-unknown-metric", ["eval", "{d}/p.jsonl", "--metric", "nope", "--out", "{d}/x.json"],
         "no metric named 'nope'; known: "),
    Case("eval-bertscore-model-missing", ["eval", "{d}/p.jsonl", "--bertscore-model", "{d}/nowhere"],
         "--bertscore-model {d}/nowhere: not a local model directory"),
    # ivl3 report
    Case("report-missing-file", ["report", "{d}/nowhere.jsonl"], "{d}/nowhere.jsonl: no such predictions file"),
    Case("report-out-read-only", ["report", "{d}/p.jsonl", "--out", "{d}/ro/r.html"],
         "--out {d}/ro/r.html: cannot write in {d}/ro (permission denied)", unprivileged=True),
    Case("report-out-under-a-file", ["report", "{d}/p.jsonl", "--out", "{d}/afile/r.html"],
         "--out {d}/afile/r.html: {d}/afile is not a folder"),
    Case("report-baseline-no-common-id", ["report", "{d}/p.jsonl", "--baseline", "{d}/other.jsonl", "--out",
                                          "{d}/r.html"], "no common ids: {d}/other.jsonl shares no id"),
    Case("report-max-frames-0", ["report", "{d}/p.jsonl", "--max-frames", "0"],
         "argument --max-frames: 0 is out of range: must be >= 1"),
    # ivl3 predict (all refused before swift starts)
    Case("predict-no-model", ["predict", "--dataset", "{d}/ds.jsonl", "--out", "{d}/p_out.jsonl"],
         "give --model (full fine-tune / base model) and/or --adapters (LoRA checkpoint)"),
    Case("predict-missing-dataset", ["predict", "--model", "{d}/model", "--dataset", "{d}/nowhere.jsonl", "--out",
                                     "{d}/p_out.jsonl"], "--dataset {d}/nowhere.jsonl: no such file"),
    Case("predict-missing-model", ["predict", "--model", "{d}/nowhere", "--dataset", "{d}/ds.jsonl", "--out",
                                   "{d}/p_out.jsonl"], "{d}/nowhere: not a local model/checkpoint directory"),
    Case("predict-dataset-not-utf8", ["predict", "--model", "{d}/model", "--dataset", "{d}/ds_latin.jsonl", "--out",
                                      "{d}/p_out.jsonl"], "ds_latin.jsonl:1: not UTF-8 (byte 0xe9)"),
    Case("predict-adapter-without-base", ["predict", "--model", "{d}/lora", "--dataset", "{d}/ds.jsonl", "--out",
                                          "{d}/p_out.jsonl"],
         "--model {d}/lora is a LoRA adapter checkpoint (adapter_config.json) with no args.json naming its base "
         "model: pass --model BASE_MODEL --adapters {d}/lora"),
    Case("predict-full-checkpoint-as-adapter", ["predict", "--adapters", "{d}/model", "--dataset", "{d}/ds.jsonl",
                                                "--out", "{d}/p_out.jsonl"],
         "--adapters {d}/model: no adapter_config.json, so not a LoRA checkpoint; a full fine-tune's checkpoint is "
         "the model: --model {d}/model"),
    Case("predict-out-is-a-folder", ["predict", "--model", "{d}/model", "--dataset", "{d}/ds.jsonl", "--out",
                                     "{d}/emptydir"], "--out {d}/emptydir: is a folder (give a file name)"),
    Case("predict-batch-size-0", ["predict", "--model", "{d}/model", "--dataset", "{d}/ds.jsonl", "--out",
                                  "{d}/p_out.jsonl", "--max-batch-size", "0"],
         "argument --max-batch-size: 0 is out of range: must be >= 1"),
    Case("predict-samples-without-temperature", ["predict", "--model", "{d}/model", "--dataset", "{d}/ds.jsonl",
                                                 "--out", "{d}/p_out.jsonl", "--num-samples", "3"],
         "--num-samples 3 needs --temperature > 0"),
    Case("predict-negative-temperature", ["predict", "--model", "{d}/model", "--dataset", "{d}/ds.jsonl", "--out",
                                          "{d}/p_out.jsonl", "--temperature", "-1"],
         "argument --temperature: -1 is out of range: must be >= 0"),
    # ivl3 pairs (all refused before anything is scored or sampled)
    Case("pairs-no-candidates-source", ["pairs", "--dataset", "{d}/ds.jsonl", "--out", "{d}/pairs"],
         "give either --candidates FILE or --model/--adapters"),
    Case("pairs-dataset-is-a-folder", ["pairs", "--dataset", "{d}/emptydir", "--candidates", "{d}/p.jsonl", "--out",
                                       "{d}/pairs"], "--dataset {d}/emptydir: not a file"),
    Case("pairs-candidates-other-ids", ["pairs", "--dataset", "{d}/ds.jsonl", "--candidates", "{d}/p.jsonl", "--out",
                                        "{d}/pairs"],
         "--candidates {d}/p.jsonl does not match the dataset: 1 dataset id(s) have no candidates (e.g. 'a'); "
         "1 candidate id(s) are not in the dataset (e.g. 'clip_a')"),
    Case("pairs-unknown-metric", ["pairs", "--dataset", "{d}/ds.jsonl", "--candidates", "{d}/p.jsonl", "--out",
                                  "{d}/pairs", "--metric", "nope"], "no metric named 'nope'"),
    Case("pairs-out-is-a-file", ["pairs", "--dataset", "{d}/ds.jsonl", "--candidates", "{d}/p.jsonl", "--out",
                                 "{d}/afile"], "--out {d}/afile: not a folder"),
    Case("pairs-one-sample", ["pairs", "--dataset", "{d}/ds.jsonl", "--model", "{d}/model", "--out", "{d}/pairs",
                              "--num-samples", "1"], "argument --num-samples: 1 is out of range: must be >= 2"),
    Case("eval-meteor-jar-missing", ["eval", "{d}/p.jsonl", "--meteor-jar", "{d}/nowhere.jar", "--out", "{d}/x.json"],
         "METEOR jar {d}/nowhere.jar (--meteor-jar): no such file"),
    # settings, through the commands that read them
    Case("settings-meteor-jar-missing", ["eval", "{d}/p.jsonl", "--out", "{d}/x.json"],
         "METEOR jar {d}/nowhere.jar (IVL3_METEOR_JAR): no such file", env={"IVL3_METEOR_JAR": "{d}/nowhere.jar"}),
    Case("settings-home-is-a-file", ["convert", "--no-progress", "{d}/ann.jsonl", "-o", "{d}/o"],
         "frame cache {d}/afile/cache/frames: cannot create it (Not a directory)", env={"IVL3_HOME": "{d}/afile"}),
]


def _run(case: Case, d: Path) -> subprocess.CompletedProcess:
    fill = lambda s: s.replace("{d}", str(d))  # noqa: E731
    argv = [sys.executable, "-m", "ivl3_plugin", *map(fill, case.argv)]
    if case.unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root without setpriv: file permissions do not apply")
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *argv]
    env = dict(os.environ, IVL3_HOME=str(d / "home"), HF_HUB_OFFLINE="1")
    env.update({k: fill(v) for k, v in (case.env or {}).items()})
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_and_its_exit_status(case, d):
    proc = _run(case, d)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == case.code, proc.stdout + proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert lines, proc.stdout
    if not case.extra_lines:
        assert len(lines) == 1, proc.stderr
    command = case.argv[0]
    assert lines[-1].startswith(f"ivl3 {command}: error: "), proc.stderr
    expected = case.message.replace("{d}", str(d))
    assert expected in lines[-1], f"\nwant: {expected}\ngot:  {lines[-1]}"


def test_the_sweep_covers_every_command_of_the_lane():
    assert {c.argv[0] for c in CASES} >= {"convert", "eval", "report", "predict", "pairs"}
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


# ---------------------------------------------------------------- a real bug is not an input error

def test_an_unexpected_exception_is_one_line_exit_70_with_the_traceback_in_a_file(monkeypatch, capsys, tmp_path):
    from ivl3_plugin import cli
    from ivl3_plugin.cli import plugins as plugins_cli

    def broken(args):
        return {}["a key the code forgot"]  # a bug: KeyError is no input error

    monkeypatch.setattr(plugins_cli, "run", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert cli.main(["plugins"]) == cli.INTERNAL_ERROR == 70
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ivl3 plugins: internal error (a bug in ivl3 or a plugin, not in your input): "
                           "KeyError: 'a key the code forgot' at test_bad_input_sweep.py:")
    assert "in broken; full traceback in " in line
    path = Path(line.rsplit("full traceback in ", 1)[1])
    assert path.parent == tmp_path and "Traceback (most recent call last)" in path.read_text()
    assert "KeyError: 'a key the code forgot'" in path.read_text()


@pytest.mark.parametrize("exc, message", [
    (FileNotFoundError(2, "No such file or directory", "/x/y.jsonl"), "/x/y.jsonl: No such file or directory"),
    (PermissionError(13, "Permission denied", "/ro/r.html"), "/ro/r.html: Permission denied"),
    (IsADirectoryError(21, "Is a directory", "/tmp"), "/tmp: Is a directory"),
    (UnicodeDecodeError("utf-8", b"ab\xe9", 2, 3, "invalid continuation byte"),
     "an input file is not UTF-8 text (byte 0xe9 at offset 2)"),
])
def test_expected_errors_are_input_errors(exc, message):
    from ivl3_plugin.cli import input_error_message

    assert input_error_message(exc) == message


def test_input_error_classes_of_every_stage_are_recognised():
    from ivl3_plugin.cli import input_error_message
    from ivl3_plugin.convert.sources import SourceError
    from ivl3_plugin.hosts.protocol import HostError
    from ivl3_plugin.metric.predictions import PredictionsError
    from ivl3_plugin.settings import SettingError
    from ivl3_plugin.shared.jsonl import JsonlError

    for cls in (SourceError, HostError, PredictionsError, SettingError, JsonlError):
        assert input_error_message(cls("named problem")) == "named problem"
    for bug in (KeyError("k"), TypeError("t"), ValueError("a bare ValueError is a bug"), AttributeError("a")):
        assert input_error_message(bug) is None
