"""Built-in dataset sources for ``ivl3 convert``: annotation tables, a folder, the user guide's shapes."""
from .. import hookimpl


@hookimpl
def register_dataset_sources(register):
    from ..convert.sources import BUILTIN_SOURCES

    for name, source in BUILTIN_SOURCES.items():
        register(name, source)
