"""Built-in tiler: InternVL's dynamic-resolution tiling (owned by ivl3_plugin.tile)."""
from .. import hookimpl  # noqa: F401
