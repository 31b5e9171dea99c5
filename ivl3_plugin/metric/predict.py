"""Produce predictions with the real ``swift infer`` and normalise them into our predictions format.

``swift infer`` is launched as a subprocess (argv list, ``HF_HUB_OFFLINE=1``)
so inference runs exactly as a user would run it.  After a full fine-tune
pass the checkpoint as ``model_dir``; after LoRA pass the base model (or
``None``: swift reads it from the adapter's ``args.json``) and the checkpoint
in ``adapters``.  Rows of the result are matched to the dataset rows by
position (swift keeps the order), which gives back ids and frame paths.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Union

from .predictions import Prediction, PredictionsError, frames_of, reference_from_messages, write_predictions

PathLike = Union[str, os.PathLike]


class PredictError(RuntimeError):
    """``swift infer`` failed or produced something we cannot match to the dataset."""


def swift_executable() -> str:
    here = Path(sys.executable).parent / "swift"
    exe = str(here) if here.is_file() else shutil.which("swift")
    if not exe:
        raise PredictError("the `swift` CLI is not installed (pip install 'ivl3-plugin[swift]')")
    return exe


def infer_argv(model_dir: Optional[PathLike], dataset_jsonl: PathLike, result_path: PathLike,
               adapters: Optional[Sequence[PathLike]] = None, template: str = "ivl3_video",
               max_new_tokens: int = 128, max_batch_size: int = 4, extra_args: Sequence[str] = ()) -> List[str]:
    """The ``swift infer`` command line (an argv list, never a shell string)."""
    if model_dir is None and not adapters:
        raise ValueError("give model_dir (full fine-tune or base model) and/or adapters (LoRA checkpoint)")
    argv = [swift_executable(), "infer"]
    if model_dir is not None:
        argv += ["--model", str(model_dir)]
    if adapters:
        argv += ["--adapters", *[str(a) for a in adapters]]
    argv += ["--template", template, "--val_dataset", str(dataset_jsonl),
             "--custom_register_path", "ivl3_plugin", "--result_path", str(result_path),
             "--max_new_tokens", str(max_new_tokens), "--temperature", "0",
             "--max_batch_size", str(max_batch_size), *map(str, extra_args)]
    return argv


def read_dataset(dataset_jsonl: PathLike) -> List[dict]:
    path = Path(dataset_jsonl)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such dataset file")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PredictionsError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return rows


def normalise_results(result_rows: List[dict], dataset_rows: List[dict], where: str) -> List[Prediction]:
    """Pair swift's result rows with the dataset rows they answer (same order, same count)."""
    if len(result_rows) != len(dataset_rows):
        raise PredictError(f"{where}: {len(result_rows)} results for {len(dataset_rows)} dataset rows")
    preds = []
    for i, (res, row) in enumerate(zip(result_rows, dataset_rows)):
        if "response" not in res:
            raise PredictError(f"{where}:{i + 1}: no 'response' field")
        ref = reference_from_messages(row.get("messages")) or res.get("labels")
        if not isinstance(ref, str):
            raise PredictionsError(f"dataset row {i + 1}: no assistant message to use as the reference")
        frames = frames_of(row) or frames_of(res)
        preds.append(Prediction(str(row.get("id", i)), [ref], res["response"] or "", frames))
    return preds


def predict(model_dir: Optional[PathLike], dataset_jsonl: PathLike, out_path: PathLike,
            adapters: Optional[Union[PathLike, Sequence[PathLike]]] = None, template: str = "ivl3_video",
            max_new_tokens: int = 128, max_batch_size: int = 4, extra_args: Sequence[str] = (),
            env: Optional[dict] = None, timeout: Optional[float] = None) -> Path:
    """Run ``swift infer`` on a converted dataset JSONL and write our predictions JSONL to ``out_path``."""
    if isinstance(adapters, (str, os.PathLike)):
        adapters = [adapters]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    raw = out_path.with_name(out_path.stem + ".swift_infer.jsonl")
    if raw.exists():
        raw.unlink()  # swift appends to an existing result file
    dataset_rows = read_dataset(dataset_jsonl)
    argv = infer_argv(model_dir, Path(dataset_jsonl).absolute(), raw.absolute(), adapters, template,
                      max_new_tokens, max_batch_size, extra_args)
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("HF_HUB_OFFLINE", "1")
    run_env.setdefault("HF_DATASETS_OFFLINE", "1")
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env.get('PATH', '')}"
    proc = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not raw.is_file():
        raise PredictError(f"swift infer failed (exit {proc.returncode}): {' '.join(argv)}\n"
                           f"{proc.stderr[-4000:]}")
    result_rows = [json.loads(l) for l in raw.read_text(encoding="utf-8").splitlines() if l.strip()]
    return write_predictions(normalise_results(result_rows, dataset_rows, str(raw)), out_path)
