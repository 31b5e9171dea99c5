"""ms-swift host adapter: translate our registries into ms-swift's own registries.

``install()`` is what ``swift sft --custom_register_path ivl3_plugin`` (or
``--external_plugins <this package>/hosts/swift/external_plugin.py``) ends up calling in
every process swift starts.  It is idempotent: swift may import a plugin
twice under two module names, and dataset workers replay the import.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("ivl3_plugin.swift")

_lock = threading.Lock()
_done = False


def install() -> None:
    """Register every template, dataset and metric of every loaded plugin, our trainer callbacks, and the
    remote-code checkpoint support (``remote_code.py``), with ms-swift."""
    global _done
    with _lock:
        if _done:
            return
        from ...plugins import get_plugins

        plugins = get_plugins()
        for err in plugins.errors:
            log.warning("%s", err)
        _install_templates(plugins)
        _install_datasets(plugins)
        _install_metrics(plugins)
        _install_callbacks()
        _install_remote_code_support()
        _done = True


def _install_templates(plugins) -> None:
    from swift.template import register_template

    from .template import template_metas

    for entry in plugins.templates:
        for meta in template_metas(entry.obj):
            register_template(meta, exist_ok=True)


def swift_dataset_names(name: str, spec) -> dict:
    """``NAME`` -> train split, ``NAME-<split>`` -> every other split (only splits that exist)."""
    out = {}
    for split in spec.splits:
        path = spec.split_file(split)
        if path.is_file():
            out[name if split == "train" else f"{name}-{split}"] = path
    return out


def _install_datasets(plugins) -> None:
    from swift.dataset import DatasetMeta, register_dataset

    from .template import Ivl3RowPreprocessor  # keeps `id`/`timestamps` for the template

    for entry in plugins.datasets:
        for swift_name, path in swift_dataset_names(entry.name, entry.obj).items():
            register_dataset(DatasetMeta(dataset_name=swift_name, dataset_path=str(path),
                                         preprocess_func=Ivl3RowPreprocessor()), exist_ok=True)


def _install_metrics(plugins) -> None:
    if not len(plugins.metrics):
        return
    from swift.metrics import eval_metrics_map

    from .metric import swift_metric_class

    for entry in plugins.metrics:
        eval_metrics_map[entry.name] = swift_metric_class(entry.name, entry.obj)


def _install_remote_code_support() -> None:
    from .remote_code import install as install_remote_code

    install_remote_code()


def _install_callbacks() -> None:
    from swift.callbacks import callbacks_map

    from ...recipe.compile import CALLBACK_NAME, RECOMPUTE_CALLBACK
    from ...recipe.row_attention import CALLBACK_NAME as SKIP_PADDING_CALLBACK
    from .callbacks import recompute_callback_class, skip_padding_callback_class, swift_callback_class

    callbacks_map.setdefault(CALLBACK_NAME, swift_callback_class())
    callbacks_map.setdefault(RECOMPUTE_CALLBACK, recompute_callback_class())
    callbacks_map.setdefault(SKIP_PADDING_CALLBACK, skip_padding_callback_class())
    from ...recipe.length_group import LENGTH_GROUP_CALLBACK
    from .length_group import length_group_callback_class

    callbacks_map.setdefault(LENGTH_GROUP_CALLBACK, length_group_callback_class())
