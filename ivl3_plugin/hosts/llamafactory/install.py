"""LLaMA-Factory host adapter, registration: our templates and multimodal plugin in its module registries.

LLaMA-Factory 0.9.5 has no plugin entry points; it keeps module-level registries instead:
``llamafactory.data.template.TEMPLATES`` (filled by ``register_template``, which refuses an
existing name) and ``llamafactory.data.mm_plugin.PLUGINS`` (``register_mm_plugin``).
:func:`install` fills them from every loaded ivl3 plugin.  Runs only in the llamafactory
environment, in every process :mod:`.run` starts.
"""
from __future__ import annotations

import logging
import threading
from typing import List

from ...settings import BLOCK_PLUGINS

log = logging.getLogger("ivl3_plugin.llamafactory")

MM_PLUGIN = "ivl3_video"          # our multimodal plugin's name in LLaMA-Factory's PLUGINS

_lock = threading.Lock()
_registered: set = set()


def install(plugins=None) -> List[str]:
    """Register our multimodal plugin and every template; idempotent.  Returns the template names."""
    from llamafactory.data import mm_plugin as lf_mm
    from llamafactory.data import template as lf_template

    from .mm import Ivl3VideoPlugin, register_spec

    if plugins is None:
        from ...plugins import get_plugins

        plugins = get_plugins()
    with _lock:
        for err in plugins.errors:
            log.warning("%s", err)
        current = lf_mm.PLUGINS.get(MM_PLUGIN)
        if current is None:
            lf_mm.register_mm_plugin(MM_PLUGIN, Ivl3VideoPlugin)
        elif current is not Ivl3VideoPlugin:
            raise RuntimeError(f"LLaMA-Factory already has a multimodal plugin named {MM_PLUGIN!r} ({current!r})")
        names = []
        for entry in plugins.templates:
            name = entry.name
            if name not in _registered:
                if name in lf_template.TEMPLATES:
                    raise RuntimeError(
                        f"template {name!r} (from ivl3 plugin {entry.plugin!r}) clashes with LLaMA-Factory's own "
                        f"template of that name; rename it or block the plugin with {BLOCK_PLUGINS.name}")
                register_spec(entry.obj.for_run(), name)
                _registered.add(name)
            names.append(name)
        return names
