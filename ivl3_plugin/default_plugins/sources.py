"""Built-in dataset sources for ``ivl3 convert`` (owned by the converter)."""
from .. import hookimpl  # noqa: F401
