"""The ``ivl3_compile`` ms-swift trainer callback: regional torch.compile of the model's layers.

``swift sft --custom_register_path ivl3_plugin --callbacks ivl3_compile …`` (the recipes
that run on one GPU, with DDP or with ZeRO-1 set it).  What is compiled, and why it pays on host-bound steps:
``ivl3_plugin.recipe.compile``.  ``IVL3_COMPILE=0`` turns it off without editing a recipe.
"""
from __future__ import annotations

import logging
import os

from ..recipe.compile import compile_layers

log = logging.getLogger("ivl3_plugin.swift")


class CompileError(RuntimeError):
    """The run cannot be compiled as asked; the message says what to change."""


def compile_disabled() -> bool:
    return os.environ.get("IVL3_COMPILE", "1").strip().lower() in ("0", "false", "no", "off")


def check_compilable() -> None:
    """ZeRO-3 gathers each layer's weights with hooks inside its forward; a compiled layer would trace
    the empty partitions.  Say so before the first step instead of failing inside it."""
    try:
        from transformers.integrations import is_deepspeed_zero3_enabled
    except ImportError:  # pragma: no cover - transformers without the integration
        return
    if is_deepspeed_zero3_enabled():
        raise CompileError("--callbacks ivl3_compile does not work with DeepSpeed ZeRO-3 (it gathers weights "
                           "inside each layer); drop ivl3_compile from 'callbacks' or use ZeRO-1/2")


def swift_callback_class():
    """The callback class, built on ms-swift's base (imported here, so the core never needs swift)."""
    from swift.callbacks.base import TrainerCallback

    class Ivl3CompileCallback(TrainerCallback):
        def __init__(self, args, trainer):
            super().__init__(args, trainer)
            self.compiled = []
            if not compile_disabled():
                check_compilable()

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if compile_disabled():
                log.warning("ivl3 compile: IVL3_COMPILE=0, training uncompiled")
                return
            if self.compiled:  # a second train() call on the same model
                return
            self.compiled = compile_layers(model if model is not None else self.trainer.model)
            log.warning("ivl3 compile: %s (the first step includes the compile time)", "; ".join(self.compiled))

    return Ivl3CompileCallback
