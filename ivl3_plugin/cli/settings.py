"""``ivl3 settings``: every environment variable ivl3-plugin reads, its value here and now, and what it does."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("settings", help="list the environment variables ivl3 reads, with their current values")
    p.add_argument("--markdown", action="store_true", help="print the table of docs/settings.md")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from ..settings import SETTINGS, SettingError, markdown_table

    if args.markdown:
        print(markdown_table())
        return 0
    bad = 0
    for s in SETTINGS.values():
        raw = os.environ.get(s.name)
        try:
            value = s.get()
            shown = f"{value!r}" + ("" if raw not in (None, "") else "  (default)")
        except SettingError as exc:
            shown, bad = f"INVALID: {exc}", bad + 1
        print(f"{s.name:26} {shown}\n{'':26} {s.meaning}")
    return 1 if bad else 0
