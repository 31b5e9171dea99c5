"""Plugin loading: built-ins first, then the ``ivl3_plugin`` entry-point group.

A plugin that fails to import, or raises inside a hook, is reported by name
and skipped; the others keep working.  The setting ``BLOCK_PLUGINS`` (comma list of
plugin names, or ``*`` for every third-party plugin) keeps plugins out.
"""
from __future__ import annotations

import importlib
import logging
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Dict, List, Optional

import pluggy

from ..settings import BLOCK_PLUGINS
from . import hookspecs
from .kinds import BY_ATTR, KINDS
from .registry import Registry

log = logging.getLogger("ivl3_plugin")

ENTRY_POINT_GROUP = "ivl3_plugin"
BLOCK_ENV = BLOCK_PLUGINS.name

DEFAULT_PLUGINS = (
    "ivl3_plugin.default_plugins.sources",
    "ivl3_plugin.default_plugins.datasets",
    "ivl3_plugin.default_plugins.tiling",
    "ivl3_plugin.default_plugins.templates",
    "ivl3_plugin.default_plugins.metrics",
    "ivl3_plugin.default_plugins.recipes",
)

HOOKS = {k.hook: k.name for k in KINDS}  # hook name -> kind name


@dataclass
class PluginError:
    plugin: str
    phase: str  # "import" or a hook name
    error: str

    def __str__(self) -> str:
        where = "while importing" if self.phase == "import" else f"in hook {self.phase}"
        return f"plugin {self.plugin!r} failed {where}: {self.error}"


@dataclass
class PluginInfo:
    name: str
    version: str
    hooks: List[str]
    builtin: bool


@dataclass
class Plugins:
    """Everything loaded: the pluggy manager, registries and what went wrong."""

    pm: pluggy.PluginManager
    registries: Dict[str, Registry]
    errors: List[PluginError] = field(default_factory=list)
    versions: Dict[str, str] = field(default_factory=dict)
    blocked: List[str] = field(default_factory=list)

    def registry(self, hook: str) -> Registry:
        return self.registries[hook]

    def __getattr__(self, attr: str) -> Registry:
        """``plugins.templates``, ``plugins.metrics`` …: one accessor per kind in KINDS."""
        kind = BY_ATTR.get(attr)
        if kind is None:
            raise AttributeError(attr)
        return self.registries[kind.hook]

    def info(self) -> List[PluginInfo]:
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # a blocked name: pluggy keeps a placeholder
                continue
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            out.append(PluginInfo(name, self.versions.get(name, ""), hooks, name in DEFAULT_PLUGINS))
        return out


def blocked_names() -> List[str]:
    return list(BLOCK_PLUGINS.get())


def _dist_version(dist_name: Optional[str]) -> str:
    if not dist_name:
        return ""
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return ""


def build(extra_plugins: Optional[Dict[str, object]] = None, entry_points: bool = True) -> Plugins:
    """Load plugins and fill fresh registries (tests pass ``extra_plugins``)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = blocked_names()
    errors: List[PluginError] = []
    versions: Dict[str, str] = {}
    own_version = _dist_version("ivl3-plugin")

    def add(name: str, load: Callable[[], object], version: str) -> None:
        if name in blocked or ("*" in blocked and name not in DEFAULT_PLUGINS):
            pm.set_blocked(name)
            return
        try:
            plugin = load()
        except Exception as exc:  # a broken plugin must not take the others down
            errors.append(PluginError(name, "import", f"{type(exc).__name__}: {exc}"))
            return
        if pm.get_plugin(name) is not None or pm.is_registered(plugin):
            errors.append(PluginError(name, "import", "registered twice; second copy ignored"))
            return
        pm.register(plugin, name=name)
        versions[name] = version

    for mod in DEFAULT_PLUGINS:
        add(mod, lambda mod=mod: importlib.import_module(mod), own_version)
    if entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            add(ep.name, ep.load, _dist_version(dist.name if dist else None))
    for name, plugin in (extra_plugins or {}).items():
        add(name, lambda plugin=plugin: plugin, "")
    pm.check_pending()

    registries = {k.hook: Registry(k.name, k.check) for k in KINDS}
    for hook, registry in registries.items():
        for impl in getattr(pm.hook, hook).get_hookimpls():  # registration order: built-ins first
            before = set(registry.names())
            try:
                impl.function(register=registry.callback_for(impl.plugin_name))
            except Exception as exc:
                registry.drop_since(impl.plugin_name, before)  # nothing half-registered stays
                errors.append(PluginError(impl.plugin_name, hook, f"{type(exc).__name__}: {exc}"))
    for err in errors:
        log.warning("%s", err)
    return Plugins(pm, registries, errors, versions, [b for b in blocked])


_LOCK = threading.Lock()
_LOADED: Optional[Plugins] = None


def get_plugins() -> Plugins:
    """The process-wide plugin set, loaded once on first use."""
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            _LOADED = build()
        return _LOADED


def reset() -> None:
    """Forget the loaded plugins (tests, or after installing a plugin)."""
    global _LOADED
    with _LOCK:
        _LOADED = None


def report_errors(stream=sys.stderr) -> None:
    for err in get_plugins().errors:
        print(f"warning: {err}", file=stream)
