"""Validation of what plugins register: duck-typed, cheap, and importing nothing heavy."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def dataset_source(name: str, obj: Any) -> None:
    for attr in ("sniff", "read"):
        if not callable(getattr(obj, attr, None)):
            raise TypeError(f"a dataset source needs a callable .{attr}(); got {type(obj).__name__}")


def dataset(name: str, obj: Any) -> None:
    if not hasattr(obj, "path") or not hasattr(obj, "splits"):
        raise TypeError(f"a dataset must be a DatasetSpec (with .path and .splits); got {type(obj).__name__}")


def preprocessor(name: str, obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"a preprocessor must be callable; got {type(obj).__name__}")


def template(name: str, obj: Any) -> None:
    from .template.spec import TemplateSpec

    if not isinstance(obj, TemplateSpec):
        raise TypeError(f"a template must be a TemplateSpec; got {type(obj).__name__}")


def metric(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and callable(getattr(obj, "compute", None))):
        raise TypeError(f"a metric must be a class with .compute() (an evaluate.Metric); got {obj!r}")


def recipe_folder(name: str, obj: Any) -> None:
    if not Path(obj).is_dir():
        raise ValueError(f"recipe folder {obj!s} does not exist")
