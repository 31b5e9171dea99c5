"""The plugin machinery: hookspecs, the table of kinds, registries and the loader.

``get_plugins()`` is the process-wide set (built-ins first, then the ``ivl3_plugin``
entry-point group); each kind's registry is ``get_plugins().<attr>`` (``templates``,
``metrics`` …, see :data:`~ivl3_plugin.plugins.kinds.KINDS`).  Plugin authors import what they
need from :mod:`ivl3_plugin.api`.
"""
from .hookspecs import hookimpl
from .kinds import KINDS, Kind
from .loader import (
    BLOCK_ENV,
    DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP,
    HOOKS,
    PluginError,
    PluginInfo,
    Plugins,
    build,
    get_plugins,
    report_errors,
    reset,
)
from .registry import Entry, LazyRef, RegistrationError, Registry

__all__ = ["hookimpl", "KINDS", "Kind", "BLOCK_ENV", "DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "HOOKS", "PluginError",
           "PluginInfo", "Plugins", "build", "get_plugins", "report_errors", "reset", "Entry", "LazyRef",
           "RegistrationError", "Registry"]
