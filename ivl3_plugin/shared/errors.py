"""The base class of errors in the user's input, shared by every stage.

``InputError`` (a ``ValueError``) means "this file, row, field or option cannot be used", never
"ivl3 has a bug": its message names the file (and row, field) and says what is wrong.  The
``ivl3`` command prints it as one line and exits with status 2 (``ivl3_plugin/cli/__init__.py``);
library callers may catch it to tell bad input from failures of the code.
"""
from __future__ import annotations


class InputError(ValueError):
    """An input (file, row, field, option) that cannot be used; the message says which and why."""


def type_name(value) -> str:
    """How a JSON value's type reads in a message: ``a number (1.5)``, ``a list``, ``true/false``."""
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return f"a list ({len(value)} item{'' if len(value) == 1 else 's'})"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__


def id_text(value):
    """An id as text: strings as they are (stripped), integers as their decimal string.

    Returns ``(text, None)``, ``(None, None)`` for a missing/empty id, or ``(None, reason)`` for a
    value that is not an id (float, bool, list, object): those are refused, never stringified.
    """
    if value is None:
        return None, None
    if isinstance(value, str):
        return (value.strip() or None), None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    return None, f"id must be a string or an integer, got {type_name(value)}"
