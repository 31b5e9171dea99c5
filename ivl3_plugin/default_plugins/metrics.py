"""Built-in summarisation metric (owned by ivl3_plugin.metric)."""
from .. import hookimpl  # noqa: F401
