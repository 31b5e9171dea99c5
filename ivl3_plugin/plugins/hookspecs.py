"""The hooks a plugin may implement: one per kind in :data:`ivl3_plugin.plugins.kinds.KINDS`.

Every hook receives one argument, ``register``: a typed callback owned by the matching
registry (:mod:`ivl3_plugin.plugins.registry`).  A plugin only says what it adds; the registry
checks names, types and duplicates in one place and remembers which plugin added what.
Built-ins in ``ivl3_plugin.default_plugins`` use exactly these hooks, like any third-party
package.  The value types are importable from :mod:`ivl3_plugin.api`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, TypeVar, Union

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only; importing these would load torch and friends
    from ..convert.sources import DatasetSource
    from ..datasets import DatasetSpec
    from ..template.spec import TemplateSpec

PROJECT = "ivl3_plugin"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

T = TypeVar("T", contravariant=True)


class Register(Protocol, Generic[T]):
    """``register(name, value)``: add one named value; raises ``RegistrationError`` on a bad name,
    a value of the wrong kind, or a name another plugin already took."""

    def __call__(self, name: str, value: T) -> None: ...


@hookspec
def register_dataset_sources(register: "Register[DatasetSource]") -> None:
    """Add input formats for ``ivl3 convert``.

    Call ``register(name, source)`` where ``source`` is a
    :class:`ivl3_plugin.api.DatasetSource`: it says whether it can read a path (``sniff``) and
    yields :class:`~ivl3_plugin.api.SourceRow` items (video path, summary, id, optional clip bounds).
    """


@hookspec
def register_datasets(register: "Register[DatasetSpec]") -> None:
    """Add named, ready datasets usable as ``--dataset NAME`` in a host.

    Call ``register(name, spec)`` with a :class:`ivl3_plugin.api.DatasetSpec` (a converted
    directory and its default split files).
    """


@hookspec
def register_preprocessors(register: "Register[Callable[..., Any]]") -> None:
    """Add image/frame tilers; a template uses the one its ``TemplateSpec.preprocessor`` names.

    Call ``register(name, fn)``; ``fn(image, *, tile_size, max_tiles, thumbnail, dtype)`` gets a
    PIL image and returns an object with ``pixel_values`` ``[n_tiles, 3, tile_size, tile_size]``
    (a :class:`ivl3_plugin.api.TileResult`).
    """


@hookspec
def register_templates(register: "Register[TemplateSpec]") -> None:
    """Add chat/prompt templates.

    Call ``register(name, spec)`` with a :class:`ivl3_plugin.api.TemplateSpec` (frame layout,
    prompt file, token-budget rules, which preprocessor tiles); host adapters turn it into the
    host's template.  Plugins may add Jinja prompt files by registering a spec whose
    ``prompt_dir`` points at their own folder.
    """


@hookspec
def register_metrics(register: "Register[type]") -> None:
    """Add evaluation metrics, used by ``ivl3 eval/report --metric NAME`` and ms-swift's ``--eval_metric NAME``.

    Call ``register(name, metric_cls)`` with a subclass of ``evaluate.Metric`` whose
    ``compute(predictions=..., references=...)`` returns plain floats.
    """


@hookspec
def register_recipes(register: "Register[Union[Path, str]]") -> None:
    """Add folders of training recipes.

    Call ``register(name, folder)`` with a :class:`pathlib.Path` holding ``*.yaml`` recipes;
    ``ivl3 train NAME`` then finds them by file stem.
    """
