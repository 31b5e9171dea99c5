"""The hooks a plugin may implement.

Every hook receives one argument, ``register``: a callback owned by the
matching registry (see :mod:`ivl3_plugin.registry`).  A plugin only says what
it adds; the registry checks names, types and duplicates in one place and
remembers which plugin added what.  Built-ins in ``ivl3_plugin.default_plugins``
use exactly these hooks, like any third-party package.
"""
from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "ivl3_plugin"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., Any]


@hookspec
def register_dataset_sources(register: Register) -> None:
    """Add input formats for ``ivl3 convert``.

    Call ``register(name, source)`` where ``source`` is a
    :class:`ivl3_plugin.convert.sources.DatasetSource`: it says whether it can
    read a path (``sniff``) and yields :class:`~ivl3_plugin.convert.sources.SourceRow`
    items (video path, summary, id, optional clip bounds).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Add named, ready datasets usable as ``--dataset NAME`` in a host.

    Call ``register(name, spec)`` with a
    :class:`ivl3_plugin.datasets.DatasetSpec` (a converted directory and
    its default split files).
    """


@hookspec
def register_preprocessors(register: Register) -> None:
    """Add image/frame tilers.

    Call ``register(name, fn)``; ``fn(image, **options)`` returns a
    :class:`ivl3_plugin.tile.TileResult` (``pixel_values [n, 3, H, W]`` and the grid).
    """


@hookspec
def register_templates(register: Register) -> None:
    """Add chat/prompt templates.

    Call ``register(name, spec)`` with a
    :class:`ivl3_plugin.template.spec.TemplateSpec` (frame layout, prompt
    file, token-budget rules); host adapters turn it into the host's template.
    Plugins may also add Jinja prompt files by registering a spec whose
    ``prompt_dir`` points at their own folder.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Add evaluation metrics.

    Call ``register(name, metric_cls)`` with a subclass of ``evaluate.Metric``
    whose ``compute(predictions=..., references=...)`` returns plain floats.
    """


@hookspec
def register_recipes(register: Register) -> None:
    """Add folders of training recipes.

    Call ``register(name, folder)`` with a :class:`pathlib.Path` holding
    ``*.yaml`` recipes; ``ivl3 train NAME`` then finds them by file stem.
    """
