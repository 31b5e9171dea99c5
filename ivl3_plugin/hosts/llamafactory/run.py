"""``python -m ivl3_plugin.hosts.llamafactory.run ARGS``: register, then LLaMA-Factory's ``run_exp()``.

ARGS are what ``llamafactory-cli train`` takes: a YAML/JSON config (with
``key=value`` overrides) or ``--key value`` pairs.  Run it directly, or under
``python -m torch.distributed.run … -m ivl3_plugin.hosts.llamafactory.run``:
every rank imports this module, so every rank has our templates, our
multimodal plugin and a ``dataset_info.json`` naming our datasets.  (LLaMA-Factory's
own launcher re-execs torchrun on its ``launcher.py``, which would lose them.)

Datasets: each name in ``dataset``/``eval_dataset`` that the given ``dataset_dir``
does not already define is resolved by :func:`ivl3_plugin.hosts.llamafactory.datasets.lf_entry`
(a registered dataset, ``NAME-val`` for its val split, or a converted folder);
the merged ``dataset_info.json`` is written to ``<output_dir>/ivl3_lf_data``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Union

from .datasets import DATA_DIR_NAME, write_dataset_info
from .install import install

Args = Union[Dict[str, Any], List[str]]


def _get(args: Args, key: str, default=None):
    if isinstance(args, dict):
        return args.get(key, default)
    flag = f"--{key}"
    for i, item in enumerate(args):
        if item == flag and i + 1 < len(args):
            return args[i + 1]
        if item.startswith(flag + "="):
            return item.split("=", 1)[1]
    return default


def _set(args: Args, key: str, value) -> Args:
    if isinstance(args, dict):
        return {**args, key: value}
    flag, out, i = f"--{key}", [], 0
    while i < len(args):
        if args[i] == flag:
            i += 2
            continue
        if not args[i].startswith(flag + "="):
            out.append(args[i])
        i += 1
    return out + [flag, str(value)]


def _names(value) -> List[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def prepare(args: Args) -> Args:
    """Register everything with LLaMA-Factory and point ``dataset_dir`` at our dataset_info.json."""
    install()
    keys = _names(_get(args, "dataset")) + _names(_get(args, "eval_dataset"))
    if not keys:
        return args
    given = _get(args, "dataset_dir")
    known = set()
    if given and (Path(given) / "dataset_info.json").is_file():
        known = set(json.loads((Path(given) / "dataset_info.json").read_text()))
    missing = [k for k in keys if k not in known]
    if not missing:
        return args
    output_dir = _get(args, "output_dir") or "."
    target = Path(output_dir).expanduser().resolve() / DATA_DIR_NAME
    write_dataset_info(target, missing, base_dir=Path(given) if given else None)
    return _set(args, "dataset_dir", str(target))


def main(argv: List[str] = None) -> None:
    from llamafactory.hparams.parser import read_args
    from llamafactory.train.tuner import run_exp

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = read_args()
    run_exp(prepare(args))


if __name__ == "__main__":
    main()
