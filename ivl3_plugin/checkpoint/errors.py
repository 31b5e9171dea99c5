"""The one error type of :mod:`ivl3_plugin.checkpoint`."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint we refuse to read, convert or write; the message names the folder, file or tensor."""
