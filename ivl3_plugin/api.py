"""Everything a plugin author needs, from one module.

    from ivl3_plugin.api import hookimpl, DatasetSource, SourceRow, DatasetSpec, TemplateSpec

Names load lazily (PEP 562), so ``import ivl3_plugin.api`` stays cheap; ``TileResult`` needs torch
only when a tiler really builds one.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "hookimpl": "ivl3_plugin.plugins.hookspecs",
    "Register": "ivl3_plugin.plugins.hookspecs",
    "LazyRef": "ivl3_plugin.plugins.registry",
    "RegistrationError": "ivl3_plugin.plugins.registry",
    "DatasetSource": "ivl3_plugin.convert.sources",
    "SourceRow": "ivl3_plugin.convert.sources",
    "DatasetSpec": "ivl3_plugin.datasets",
    "TemplateSpec": "ivl3_plugin.template.spec",
    "TileResult": "ivl3_plugin.tile.tiler",
    "tile_image": "ivl3_plugin.tile.tiler",
    "load_image": "ivl3_plugin.tile.load",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'ivl3_plugin.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
