"""Predictions with the real ``swift infer``, normalised into our predictions format.

``swift infer`` runs as a subprocess (argv list, ``HF_HUB_OFFLINE=1``) so inference runs exactly
as a user would run it.  After a full fine-tune pass the checkpoint as the model; after LoRA pass
the base model (or none: swift reads it from the adapter's ``args.json``) and the checkpoint as
adapters; a LoRA checkpoint given as the model is recognised (``adapter_config.json``) and passed
as the adapter (:func:`resolve_model`).  Result rows are matched to the dataset rows by position
(swift keeps the order), which gives back ids, references and frame paths.  swift writes its result
file batch by batch (``--write_batch_size``), so the rows in it are the progress shown
(:class:`RowProgress`); its own output goes to ``<out>.swift_infer.log``, and a failure is one line
(swift's exception line) plus that log's path.

Sampling several candidates per row (``num_samples`` N > 1, for preference pairs): ms-swift 4.6's
``swift infer`` has no ``n``/``num_return_sequences`` argument (``RequestConfig.n`` exists, but
``InferArguments.get_request_config`` never sets it and the infer pipeline keeps ``choices[0]``).
So each dataset row is written N times in a row into ``<out>.samples_input.jsonl`` and swift runs
once over it with ``--temperature T --seed S``: one model load, and swift's ``seed_everything(S)``
makes the whole run repeatable (the same model, data, seed and ``--max-batch-size`` give the same
candidates; another batch size draws the random numbers in another order).  Results ``i*N .. i*N+N-1``
are the candidates of row ``i``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ...metric.predictions import Prediction, PredictionsError, frames_of, reference_from_messages, write_predictions
from ...shared.atomic import check_writable_file, write_text_atomic
from ...shared.errors import id_text
from ...shared.jsonl import JsonlError, read_jsonl
from ..protocol import HostError, PredictRequest
from .launch import swift_command

PathLike = Union[str, os.PathLike]


class PredictError(HostError):
    """``swift infer`` failed or produced something we cannot match to the dataset."""


def infer_argv(model_dir: Optional[PathLike], dataset_jsonl: PathLike, result_path: PathLike,
               adapters: Optional[Sequence[PathLike]] = None, template: str = "ivl3_video",
               max_new_tokens: int = 128, max_batch_size: int = 4, extra_args: Sequence[str] = (),
               temperature: float = 0.0, seed: Optional[int] = None) -> List[str]:
    """The ``swift infer`` command line (an argv list, never a shell string).

    ``temperature`` 0 is greedy decoding (the default; no ``--seed``, as before sampling existed);
    above 0 swift samples, and ``seed`` (swift's ``--seed``, default 42 in swift) is passed.
    """
    if model_dir is None and not adapters:
        raise ValueError("give model_dir (full fine-tune or base model) and/or adapters (LoRA checkpoint)")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    argv = swift_command() + ["infer"]
    if model_dir is not None:
        argv += ["--model", str(model_dir)]
    if adapters:
        argv += ["--adapters", *[str(a) for a in adapters]]
    argv += ["--template", template, "--val_dataset", str(dataset_jsonl),
             "--custom_register_path", "ivl3_plugin", "--result_path", str(result_path),
             "--max_new_tokens", str(max_new_tokens), "--temperature", f"{temperature:g}",
             "--max_batch_size", str(max_batch_size)]
    if temperature > 0 and seed is not None:
        argv += ["--seed", str(seed)]
    return argv + [*map(str, extra_args)]


def check_sampling(num_samples: int, temperature: float, seed: int) -> None:
    """Refuse sampling settings that cannot do what they say (one line, names the flags)."""
    if not isinstance(num_samples, int) or num_samples < 1:
        raise PredictError(f"--num-samples must be >= 1, got {num_samples!r}")
    if temperature < 0:
        raise PredictError(f"--temperature must be >= 0, got {temperature:g}")
    if num_samples > 1 and temperature <= 0:
        raise PredictError(f"--num-samples {num_samples} needs --temperature > 0: greedy decoding (temperature 0) "
                           f"gives the same summary every time")
    if not isinstance(seed, int) or seed < 0:
        raise PredictError(f"--seed must be a whole number >= 0, got {seed!r}")


def repeat_rows(dataset_rows: List[dict], num_samples: int, path: Path) -> Path:
    """Write every row ``num_samples`` times in a row (swift infers each copy once), atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dataset_rows for _ in range(num_samples))
    return write_text_atomic(path, text)


def read_dataset(dataset_jsonl: PathLike) -> List[dict]:
    try:
        return read_jsonl(dataset_jsonl, what="dataset")
    except JsonlError as exc:
        raise PredictionsError(str(exc)) from None


def dataset_references(row: dict, i: int) -> List[str]:
    """A converted row's references: all of ``references`` (several summaries), else the assistant message."""
    refs = row.get("references")
    if isinstance(refs, list) and refs and all(isinstance(r, str) for r in refs):
        return list(refs)
    ref = reference_from_messages(row.get("messages"))
    if not isinstance(ref, str):
        raise PredictionsError(f"dataset row {i + 1}: no assistant message to use as the reference")
    return [ref]


def normalise_results(result_rows: List[dict], dataset_rows: List[dict], where: str,
                      num_samples: int = 1) -> List[Prediction]:
    """Pair swift's result rows with the dataset rows they answer (same order; ``num_samples`` results
    per dataset row, in a row, when sampling: they become the row's ``candidates``)."""
    if len(result_rows) != len(dataset_rows) * num_samples:
        per = f" x {num_samples} samples" if num_samples > 1 else ""
        raise PredictError(f"{where}: {len(result_rows)} results for {len(dataset_rows)} dataset rows{per}")
    for k, res in enumerate(result_rows):
        if "response" not in res:
            raise PredictError(f"{where}:{k + 1}: no 'response' field")
    preds = []
    for i, row in enumerate(dataset_rows):
        group = result_rows[i * num_samples:(i + 1) * num_samples]
        res = group[0]
        try:
            refs = dataset_references(row, i)
        except PredictionsError:
            if not isinstance(res.get("labels"), str):
                raise
            refs = [res["labels"]]
        item_id, problem = id_text(row.get("id"))
        if problem:
            raise PredictionsError(f"dataset row {i + 1}, field 'id': {problem}")
        frames = frames_of(row) or frames_of(res)
        candidates = [r["response"] or "" for r in group] if num_samples > 1 else None
        preds.append(Prediction(item_id if item_id is not None else str(i), refs, res["response"] or "", frames,
                                candidates))
    return preds


def resolve_model(model: Optional[PathLike], adapters: List[PathLike], notes: List[str]):
    """``(model, adapters)`` for swift: a LoRA checkpoint given as the model becomes the adapter.

    ms-swift loads a LoRA checkpoint only through ``--adapters`` (the base model from its ``args.json``);
    given as ``--model`` it fails with a traceback.  An adapter folder (``adapter_config.json``) given as
    the model is therefore passed as the adapter, with the base from its ``args.json`` (swift reads it)
    or, without one, ``base_model_name_or_path`` of ``adapter_config.json`` when that folder exists.
    """
    for a in adapters:
        if Path(a).is_dir() and not (Path(a) / "adapter_config.json").is_file():
            raise PredictError(f"--adapters {a}: no adapter_config.json, so not a LoRA checkpoint; "
                               f"a full fine-tune's checkpoint is the model: --model {a}")
    if model is None or not (Path(model) / "adapter_config.json").is_file():
        return model, adapters
    ckpt = Path(model)
    if adapters:
        raise PredictError(f"--model {ckpt} is a LoRA adapter checkpoint (adapter_config.json), not a model; "
                           f"give the base model as --model and the checkpoint(s) as --adapters")
    base = _json_field(ckpt / "args.json", "model")
    if base:
        if _looks_local(base) and not Path(base).exists():
            raise PredictError(f"--model {ckpt} is a LoRA adapter checkpoint; its base model {base} (from "
                               f"args.json) is not there: pass --model BASE_MODEL --adapters {ckpt}")
        notes.append(f"{ckpt} is a LoRA adapter checkpoint: passed to swift as --adapters "
                     f"(base model {base}, from its args.json)")
        return None, [ckpt]
    base = _json_field(ckpt / "adapter_config.json", "base_model_name_or_path")
    if base and Path(base).is_dir():
        notes.append(f"{ckpt} is a LoRA adapter checkpoint: passed to swift as --adapters "
                     f"(base model {base}, from its adapter_config.json)")
        return base, [ckpt]
    raise PredictError(f"--model {ckpt} is a LoRA adapter checkpoint (adapter_config.json) with no args.json "
                       f"naming its base model: pass --model BASE_MODEL --adapters {ckpt}")


def _json_field(path: Path, key: str) -> Optional[str]:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _looks_local(name: str) -> bool:
    """A filesystem path rather than a hub id such as ``OpenGVLab/InternVL3-1B``."""
    return os.path.isabs(name) or name.startswith(("./", "../", "~"))


def run_predict(request: PredictRequest) -> Path:
    """Run ``swift infer`` on a converted dataset JSONL and write our predictions JSONL to ``request.out``.

    With ``request.progress`` a bar (a terminal) or a line every few seconds (a log) counts the rows
    swift has written; swift's own output goes to ``<out>.swift_infer.log``.
    """
    adapters = [request.adapters] if isinstance(request.adapters, (str, os.PathLike)) else list(request.adapters)
    check_sampling(request.num_samples, request.temperature, request.seed)
    out_path = check_writable_file(request.out, "--out")
    dataset_rows = read_dataset(request.dataset)
    model, adapters = resolve_model(request.model, adapters, request.notes)
    if request.progress:
        for note in request.notes:
            print(f"ivl3 predict: {note}", file=sys.stderr)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    raw = out_path.with_name(out_path.stem + ".swift_infer.jsonl")
    log = out_path.with_name(out_path.stem + ".swift_infer.log")
    if raw.exists():
        raw.unlink()  # swift appends to an existing result file
    extra = list(map(str, request.extra_args))
    if "--write_batch_size" not in extra:  # rows reach the result file batch by batch: the progress
        extra += ["--write_batch_size", str(max(1, request.max_batch_size))]
    infer_input = Path(request.dataset).absolute()
    if request.num_samples > 1:
        infer_input = repeat_rows(dataset_rows, request.num_samples,
                                  out_path.with_name(out_path.stem + ".samples_input.jsonl")).absolute()
    argv = infer_argv(model, infer_input, raw.absolute(), adapters, request.template,
                      request.max_new_tokens, request.max_batch_size, extra,
                      temperature=request.temperature, seed=request.seed)
    run_env = dict(os.environ if request.env is None else request.env)
    run_env.setdefault("HF_HUB_OFFLINE", "1")
    run_env.setdefault("HF_DATASETS_OFFLINE", "1")
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env.get('PATH', '')}"
    code = run_with_progress(argv, run_env, log, raw, len(dataset_rows) * request.num_samples, request.progress,
                             request.timeout)
    if code != 0 or not raw.is_file():
        raise PredictError(f"swift infer failed (exit {code}): {last_error(log)}; full log: {log}")
    try:
        result_rows = read_jsonl(raw, what="swift infer result")
    except JsonlError as exc:
        raise PredictError(str(exc)) from None
    return write_predictions(normalise_results(result_rows, dataset_rows, str(raw), request.num_samples), out_path)


def run_with_progress(argv: List[str], env: dict, log: Path, raw: Path, total: int, progress: bool,
                      timeout: Optional[float]) -> int:
    """Run ``argv`` with its output in ``log``; report the rows in ``raw`` as they appear. Returns the exit code."""
    bar = RowProgress(total, enabled=progress)
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    code = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                bar.update(count_lines(raw))
                if timeout is not None and time.monotonic() - started > timeout:
                    proc.kill()
                    proc.wait()
                    raise PredictError(f"swift infer ran past the {timeout:g} s limit; log: {log}")
        finally:
            if proc.poll() is None:  # interrupted: do not leave swift running
                proc.kill()
                proc.wait()
    bar.update(count_lines(raw))
    bar.close()
    return code


def count_lines(path: Path) -> int:
    """Complete lines in ``path`` (0 while it does not exist)."""
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    except OSError:
        return 0


def last_error(log: Path) -> str:
    """The line of swift's output that says what went wrong: the exception line, else the last line."""
    try:
        lines = [l.strip() for l in log.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no output"
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*", line):
            return line[:400]
    return lines[-1][:400] if lines else "no output"


class RowProgress:
    """Rows done of ``total``: a tqdm bar on a terminal; in a log (not a tty), one plain line every 30 s
    and at 25/50/75/100 %, so CI logs stay readable."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.enabled, self.stream = total, enabled, stream or sys.stderr
        self.done, self.started, self.last_line, self.last_quarter = 0, time.monotonic(), 0.0, 0
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="row", desc="predict", file=self.stream, dynamic_ncols=True)
        elif enabled:
            self._line()

    def update(self, done: int) -> None:
        done = min(done, self.total)
        if not self.enabled or done == self.done:
            return
        if self.bar is not None:
            self.bar.update(done - self.done)
            self.done = done
            return
        self.done = done
        quarter = 4 * done // max(1, self.total)
        if quarter > self.last_quarter or time.monotonic() - self.last_line >= 30:
            self.last_quarter = quarter
            self._line()

    def _line(self) -> None:
        self.last_line = time.monotonic()
        print(f"predict: {self.done}/{self.total} rows ({100 * self.done // max(1, self.total)}%), "
              f"{self.last_line - self.started:.0f} s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def predict(model_dir: Optional[PathLike], dataset_jsonl: PathLike, out_path: PathLike,
            adapters: Optional[Union[PathLike, Sequence[PathLike]]] = None, template: str = "ivl3_video",
            max_new_tokens: int = 128, max_batch_size: int = 4, extra_args: Sequence[str] = (),
            env: Optional[dict] = None, timeout: Optional[float] = None, progress: bool = False,
            num_samples: int = 1, temperature: float = 0.0, seed: int = 0) -> Path:
    """Keyword form of :func:`run_predict`."""
    return run_predict(PredictRequest(model_dir, dataset_jsonl, out_path, adapters or (), template, max_new_tokens,
                                      max_batch_size, extra_args, env, timeout, progress,
                                      num_samples=num_samples, temperature=temperature, seed=seed))
