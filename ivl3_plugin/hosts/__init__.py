"""Host adapters: the only modules that import a training framework.

:data:`HOSTS` names each host's adapter class (imported on first use, so this module stays
cheap: the ms-swift start-up hook imports it in every Python process).  Every adapter
implements :class:`ivl3_plugin.hosts.protocol.Host`; ``ivl3 train --host NAME`` and the demo
dispatch through :func:`get_host`.
"""
from __future__ import annotations

import importlib
from typing import List

HOSTS = {
    "swift": "ivl3_plugin.hosts.swift.host:SwiftHost",
    "llamafactory": "ivl3_plugin.hosts.llamafactory.host:LlamaFactoryHost",
}
DEFAULT_HOST = "swift"


def host_names() -> List[str]:
    return list(HOSTS)


def get_host(name: str = DEFAULT_HOST):
    """The adapter of host ``name`` (a :class:`~ivl3_plugin.hosts.protocol.Host`)."""
    if name not in HOSTS:
        from .protocol import HostError

        raise HostError(f"no host named {name!r}; known: {', '.join(HOSTS)}")
    module, _, cls = HOSTS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except ImportError as exc:
        from .protocol import HostError

        raise HostError(f"host {name!r} cannot load ({exc}); reinstall ivl3-plugin") from None
