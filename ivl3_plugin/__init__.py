"""ivl3-plugin: fine-tune InternVL3 for video summarisation inside ms-swift and LLaMA-Factory.

Importing the package is cheap (a ``.pth`` hook imports part of it in every
Python process) and never imports a host; ``hookimpl`` is what plugins
decorate their ``register_*`` functions with.
"""
__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]


def __getattr__(name):
    if name == "hookimpl":
        from .plugins.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(name)
