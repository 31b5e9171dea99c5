"""``ivl3 plugins``: what is loaded, from which distribution, implementing which hooks."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="list loaded plugins, their versions, hooks and what they registered")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..plugins import get_plugins

    plugins = get_plugins()
    registered = {}
    for hook, registry in plugins.registries.items():
        for entry in registry:
            registered.setdefault(entry.plugin, []).append(f"{registry.kind}:{entry.name}")
    rows = [
        {"name": i.name, "version": i.version, "builtin": i.builtin, "hooks": i.hooks,
         "registered": sorted(registered.get(i.name, []))}
        for i in plugins.info()
    ]
    errors = [str(e) for e in plugins.errors]
    if args.json:
        print(json.dumps({"plugins": rows, "errors": errors, "blocked": plugins.blocked}, indent=2))
        return 0
    for row in rows:
        tag = "built-in" if row["builtin"] else "third-party"
        print(f"{row['name']} {row['version']} ({tag})")
        print(f"  hooks: {', '.join(row['hooks']) or '-'}")
        if row["registered"]:
            print(f"  registered: {', '.join(row['registered'])}")
    for name in plugins.blocked:
        print(f"blocked: {name}")
    for err in errors:
        print(f"error: {err}")
    return 0
