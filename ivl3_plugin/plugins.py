"""Plugin loading: built-ins first, then the ``ivl3_plugin`` entry-point group.

A plugin that fails to import, or raises inside a hook, is reported by name
and skipped; the others keep working.  ``IVL3_BLOCK_PLUGINS`` (comma list of
plugin names, or ``*`` for every third-party plugin) keeps plugins out.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional

import pluggy

from . import hookspecs
from .registry import Registry

log = logging.getLogger("ivl3_plugin")

ENTRY_POINT_GROUP = "ivl3_plugin"
BLOCK_ENV = "IVL3_BLOCK_PLUGINS"

DEFAULT_PLUGINS = (
    "ivl3_plugin.default_plugins.sources",
    "ivl3_plugin.default_plugins.datasets",
    "ivl3_plugin.default_plugins.tiling",
    "ivl3_plugin.default_plugins.templates",
    "ivl3_plugin.default_plugins.metrics",
    "ivl3_plugin.default_plugins.recipes",
)

# hook name -> registry kind
HOOKS = {
    "register_dataset_sources": "dataset source",
    "register_datasets": "dataset",
    "register_preprocessors": "preprocessor",
    "register_templates": "template",
    "register_metrics": "metric",
    "register_recipes": "recipe folder",
}


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

    @property
    def templates(self) -> Registry:
        return self.registries["register_templates"]

    @property
    def dataset_sources(self) -> Registry:
        return self.registries["register_dataset_sources"]

    @property
    def datasets(self) -> Registry:
        return self.registries["register_datasets"]

    @property
    def preprocessors(self) -> Registry:
        return self.registries["register_preprocessors"]

    @property
    def metrics(self) -> Registry:
        return self.registries["register_metrics"]

    @property
    def recipes(self) -> Registry:
        return self.registries["register_recipes"]

    def info(self) -> List[PluginInfo]:
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # a blocked name: pluggy keeps a placeholder
                continue
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            out.append(PluginInfo(name, self.versions.get(name, ""), hooks, name in DEFAULT_PLUGINS))
        return out


def blocked_names() -> List[str]:
    raw = os.environ.get(BLOCK_ENV, "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def _checks() -> Dict[str, Optional[Callable[[str, Any], None]]]:
    from . import checks

    return {
        "register_dataset_sources": checks.dataset_source,
        "register_datasets": checks.dataset,
        "register_preprocessors": checks.preprocessor,
        "register_templates": checks.template,
        "register_metrics": checks.metric,
        "register_recipes": checks.recipe_folder,
    }


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

    checks = _checks()
    registries = {hook: Registry(kind, checks[hook]) for hook, kind in HOOKS.items()}
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
