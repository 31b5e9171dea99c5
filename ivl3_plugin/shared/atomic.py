"""Atomic writes: a reader (or a later run after a kill) sees the old file or the new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

PathLike = Union[str, os.PathLike]


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes_atomic(path, text.encode(encoding))


def check_writable_file(path: PathLike, what: str = "output file") -> Path:
    """Fail early, with a one-line reason, when ``path`` cannot be written as a file.

    Raises :class:`~ivl3_plugin.shared.errors.InputError` for a folder in the way, a parent that is a
    file, or a folder without write permission, so a long run does not end in a failed write.
    """
    from .errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path}: is a folder (give a file name)")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the first folder that exists: write_bytes_atomic creates the rest
    if not parent.is_dir():
        raise InputError(f"{what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: cannot write in {parent} (permission denied)")
    return path
