"""Registries: the owners of the ``register`` callbacks handed to hooks.

A registry is the single place where names are checked, duplicates refused
(with both plugins named) and objects validated, so plugins stay declarative.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

from ..settings import BLOCK_PLUGINS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class RegistrationError(ValueError):
    """A plugin registered something invalid or a name that is already taken."""


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    plugin: str


@dataclass(frozen=True)
class LazyRef:
    """``"package.module:attr"`` to import only when the object is first needed.

    Lets a plugin register something expensive to import (``evaluate``, torch)
    without slowing down every process that merely loads plugins.
    """

    target: str

    def __post_init__(self):
        module, _, attr = self.target.partition(":")
        if not module or not attr:
            raise RegistrationError(f"lazy reference {self.target!r} must look like 'package.module:attr'")

    def resolve(self, what: str) -> Any:
        import importlib

        module, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            raise RegistrationError(f"{what}: cannot load {self.target!r}: {type(exc).__name__}: {exc}") from exc
        return obj


class Registry:
    """Named objects of one kind, each remembered with the plugin that added it."""

    def __init__(self, kind: str, check: Optional[Callable[[str, Any], None]] = None):
        self.kind = kind
        self._check = check
        self._entries: Dict[str, Entry] = {}

    def callback_for(self, plugin: str) -> Callable[..., None]:
        """The ``register`` function handed to one plugin's hook."""

        def register(name: str, obj: Any) -> None:
            self.add(name, obj, plugin=plugin)

        register.__doc__ = f"Register a {self.kind} named NAME (from plugin {plugin!r})."
        return register

    def add(self, name: str, obj: Any, plugin: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistrationError(
                f"plugin {plugin!r} registered a {self.kind} with an invalid name {name!r}: "
                "use letters, digits, '_', '-' or '.'"
            )
        if self._check is not None and not isinstance(obj, LazyRef):  # a LazyRef is checked when resolved
            self._validate(name, obj, plugin)
        old = self._entries.get(name)
        if old is not None:
            if old.plugin == plugin and old.obj is obj:
                return  # the same plugin imported twice (swift may do this): harmless
            raise RegistrationError(
                f"{self.kind} {name!r} is registered by both plugin {old.plugin!r} and plugin "
                f"{plugin!r}; block one of them with {BLOCK_PLUGINS.name} or rename it"
            )
        self._entries[name] = Entry(name, obj, plugin)

    def drop_since(self, plugin: str, before: set) -> None:
        """Forget what ``plugin`` added after the snapshot ``before``: a failed hook is skipped whole."""
        for name in [n for n, e in self._entries.items() if e.plugin == plugin and n not in before]:
            del self._entries[name]

    def _validate(self, name: str, obj: Any, plugin: str) -> None:
        try:
            self._check(name, obj)
        except RegistrationError:
            raise
        except Exception as exc:  # checks raise TypeError/ValueError: say who
            raise RegistrationError(f"plugin {plugin!r}, {self.kind} {name!r}: {exc}") from exc

    def get(self, name: str) -> Any:
        """The registered object; a :class:`LazyRef` is imported and validated on first use."""
        try:
            entry = self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"no {self.kind} named {name!r}; known: {known}") from None
        if isinstance(entry.obj, LazyRef):
            obj = entry.obj.resolve(f"{self.kind} {name!r} of plugin {entry.plugin!r}")
            if self._check is not None:
                self._validate(name, obj, entry.plugin)
            entry = self._entries[name] = Entry(name, obj, entry.plugin)
        return entry.obj

    def entry(self, name: str) -> Entry:
        self.get(name)
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> List[str]:
        return sorted(self._entries)
