"""The kinds of thing a plugin can add, in one table: name, hook, value type, check, and reader.

Everything else is derived from :data:`KINDS`: the registries the loader fills, the
``Plugins.<attr>`` accessors, ``ivl3 plugins`` output, and the meta-tests (which also prove that
each kind's ``reader`` really changes behaviour when a plugin registers something).  Checks are
duck-typed and cheap: they import nothing heavy, so loading plugins stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict


def _dataset_source(name: str, obj: Any) -> None:
    for attr in ("sniff", "read"):
        if not callable(getattr(obj, attr, None)):
            raise TypeError(f"a dataset source needs a callable .{attr}(); got {type(obj).__name__}")


def _dataset(name: str, obj: Any) -> None:
    if not hasattr(obj, "path") or not hasattr(obj, "splits"):
        raise TypeError(f"a dataset must be a DatasetSpec (with .path and .splits); got {type(obj).__name__}")


def _preprocessor(name: str, obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"a preprocessor must be callable; got {type(obj).__name__}")


def _template(name: str, obj: Any) -> None:
    # duck-typed like the others, so the machinery imports no pipeline stage (docs/architecture.md)
    if not all(hasattr(obj, a) for a in ("name", "prompt", "frame_label", "max_tiles_per_frame", "for_run")):
        raise TypeError(f"a template must be a TemplateSpec; got {type(obj).__name__}")


def _metric(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and callable(getattr(obj, "compute", None))):
        raise TypeError(f"a metric must be a class with .compute() (an evaluate.Metric); got {obj!r}")


def _recipe_folder(name: str, obj: Any) -> None:
    if not Path(obj).is_dir():
        raise ValueError(f"recipe folder {obj!s} does not exist")


@dataclass(frozen=True)
class Kind:
    name: str          # how messages and `ivl3 plugins` call it
    hook: str          # the hookspec a plugin implements
    attr: str          # Plugins.<attr> -> its Registry
    value: str         # what register(name, value) takes (documentation)
    check: Callable[[str, Any], None]
    reader: str        # the code that reads the registry (documentation; the meta-test proves it)


KINDS = (
    Kind("dataset source", "register_dataset_sources", "dataset_sources",
         "a DatasetSource (sniff(path), read(path) -> SourceRow)", _dataset_source,
         "ivl3 convert (convert/sources.py: pick_source)"),
    Kind("dataset", "register_datasets", "datasets", "a DatasetSpec (converted folder + split files)", _dataset,
         "the hosts' install(): `--dataset NAME` in ms-swift, LLaMA-Factory's dataset_info.json"),
    Kind("preprocessor", "register_preprocessors", "preprocessors",
         "a tiler fn(image, *, tile_size, max_tiles, thumbnail, dtype) -> TileResult", _preprocessor,
         "the template tiles with the preprocessor its TemplateSpec names (template/media.py)"),
    Kind("template", "register_templates", "templates", "a TemplateSpec", _template,
         "the hosts' install(): `--template NAME`"),
    Kind("metric", "register_metrics", "metrics", "an evaluate.Metric subclass", _metric,
         "ivl3 eval / ivl3 report --metric NAME (metric/evaluation.py); ms-swift --eval_metric NAME"),
    Kind("recipe folder", "register_recipes", "recipes", "a folder of *.yaml recipes", _recipe_folder,
         "ivl3 train / ivl3 recipe check NAME (recipe/launch.py: find_recipe)"),
)
BY_HOOK: Dict[str, Kind] = {k.hook: k for k in KINDS}
BY_ATTR: Dict[str, Kind] = {k.attr: k for k in KINDS}
