"""Let ``swift sft --custom_register_path ivl3_plugin`` name a package, not a file.

ms-swift 4.6 imports each ``--custom_register_path`` / ``--external_plugins``
entry with ``importlib.util.spec_from_file_location``, so an installed package
name fails with "Cannot import external file" (ms-swift before 4.6 used
``importlib.import_module``).  A ``.pth`` file installed with this package
calls :func:`install` at interpreter start-up: it puts a meta-path finder in
place that, the moment ``swift.utils.utils`` is loaded, wraps its
``import_external_file`` so that an entry which is not a file but an
importable module name is imported by name.  File paths behave exactly as
before.  Opt out with the setting ``NO_SWIFT_IMPORT_HOOK`` (``ivl3_plugin.settings``).

This module must stay cheap: it runs in every Python process of the venv.
"""
from __future__ import annotations

import sys

TARGET = "swift.utils.utils"
_installed = False


def _is_module_name(entry: str) -> bool:
    return bool(entry) and all(part.isidentifier() for part in entry.split("."))


def wrap(original):
    """Return an ``import_external_file`` that also accepts module names."""
    if getattr(original, "__ivl3_wrapped__", False):
        return original

    def import_external_file(file_path: str):
        import importlib
        import importlib.util
        import os

        path = os.path.abspath(os.path.expanduser(file_path))
        if not os.path.isfile(path) and _is_module_name(file_path):
            try:
                found = importlib.util.find_spec(file_path)
            except (ImportError, ValueError):
                found = None
            if found is not None:
                module = importlib.import_module(file_path)
                record = getattr(sys.modules.get(TARGET), "_external_files", None)
                if isinstance(record, list) and file_path not in record:
                    record.append(file_path)  # replayed by name in dataloader workers
                if file_path == "ivl3_plugin" or file_path.startswith("ivl3_plugin."):
                    from .install import install as install_into_swift

                    install_into_swift()
                return module
        return original(file_path)

    import_external_file.__ivl3_wrapped__ = True
    import_external_file.__wrapped__ = original
    import_external_file.__doc__ = original.__doc__
    return import_external_file


def _patch(module) -> None:
    fn = getattr(module, "import_external_file", None)
    if fn is not None:
        module.import_external_file = wrap(fn)


class _Finder:
    """Finds nothing itself; decorates the real loader of ``swift.utils.utils``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original_exec = loader.exec_module

        class _Loader:
            def create_module(self, spec):
                return loader.create_module(spec) if hasattr(loader, "create_module") else None

            def exec_module(self, module):
                original_exec(module)
                _patch(module)

            def __getattr__(self, name):
                return getattr(loader, name)

        spec.loader = _Loader()
        return spec


def startup() -> None:
    """What the ``.pth`` line runs in every interpreter: install unless the setting says not to."""
    from ...settings import NO_SWIFT_IMPORT_HOOK, SettingError

    try:
        if NO_SWIFT_IMPORT_HOOK.get():
            return
    except SettingError as exc:  # never break interpreter start-up over a typo
        sys.stderr.write(f"ivl3_plugin: {exc}; the ms-swift import hook stays off\n")
        return
    install()


def install() -> None:
    """Install the finder once (or patch swift directly if it is already loaded)."""
    global _installed
    if _installed:
        return
    _installed = True
    if TARGET in sys.modules:
        _patch(sys.modules[TARGET])
        return
    sys.meta_path.insert(0, _Finder())
