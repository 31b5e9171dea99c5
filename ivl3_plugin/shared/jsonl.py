"""The one JSONL reader: every line numbered, every problem named by file and line.

Callers choose what a bad line means: the converter keeps it as a skipped row (``iter_jsonl``
yields it with ``error`` set), predictions and datasets refuse the file (``read_jsonl`` raises
:class:`JsonlError` naming the file and line).  Not-UTF-8 bytes are reported with their line.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

from .errors import InputError

PathLike = Union[str, os.PathLike]


class JsonlError(InputError):
    """A JSONL file that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class JsonlLine:
    line: int                 # 1-based line number in the file
    value: Any = None         # the parsed JSON value (None when ``error`` is set)
    error: Optional[str] = None  # the JSON parser's message for a line that is not JSON


def decode_utf8(path: Path, data: bytes) -> str:
    """``data`` as text (a UTF-8 BOM dropped); bytes that are not UTF-8 raise ``JsonlError`` with their line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise JsonlError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None


def iter_jsonl(path: PathLike) -> Iterator[JsonlLine]:
    """Each non-blank line, parsed or with ``error`` set; the file itself must exist and be UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise JsonlError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    text = decode_utf8(path, path.read_bytes())
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield JsonlLine(n, json.loads(line))
        except json.JSONDecodeError as exc:
            yield JsonlLine(n, error=exc.msg)


def read_jsonl(path: PathLike, what: str = "JSONL", objects: bool = True, allow_empty: bool = False) -> List[Any]:
    """Every line's value; the first bad line (or a non-object, or an empty file) raises ``JsonlError``."""
    out = []
    for item in iter_jsonl(path):
        if item.error:
            raise JsonlError(f"{path}:{item.line}: not valid JSON ({item.error})")
        if objects and not isinstance(item.value, dict):
            raise JsonlError(f"{path}:{item.line}: expected a JSON object, got {type(item.value).__name__}")
        out.append(item.value)
    if not out and not allow_empty:
        raise JsonlError(f"{path}: no rows (an empty {what} file)")
    return out
