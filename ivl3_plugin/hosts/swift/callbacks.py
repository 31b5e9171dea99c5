"""Our ms-swift trainer callbacks: ``ivl3_compile`` (regional torch.compile; the LLM's attention skips
padding, ``recipe/row_attention.py``; the ViT's patch embedding as one matmul, ``recipe/patch_conv.py``; the
frozen ViT's MLP with its GELU in the matmul's epilogue, ``recipe/vit_mlp.py``; a micro-batch with no wait
on the GPU, ``host_ahead.py``),
``ivl3_skip_padding`` (that alone, uncompiled) and ``ivl3_recompute``
(gradient checkpointing on only the LLM's first k layers).

``swift sft --custom_register_path ivl3_plugin --callbacks ivl3_compile …`` (the recipes
that run on one GPU, with DDP or with ZeRO-1 set it).  What is compiled, and why it pays on host-bound steps:
``ivl3_plugin.recipe.compile``.  The setting ``COMPILE`` (``ivl3_plugin.settings``) turns it off without
editing a recipe.  Both read their run settings from ``CALLBACK_ARGS`` (keyed by callback name), which
``ivl3 train`` writes into the launch environment and a recipe's ``ENV`` block carries for plain ``swift sft``.
"""
from __future__ import annotations

import logging

from ...recipe.callback_args import field_error
from ...recipe.compile import CALLBACK_NAME, RECOMPUTE_CALLBACK, checkpoint_first, compile_layers, prefer_attention
from ...recipe.patch_conv import patch_convs_as_matmul
from ...recipe.row_attention import CALLBACK_NAME as SKIP_PADDING_CALLBACK, enable as skip_padding
from ...recipe.vit_mlp import fuse_vit_mlp_gelu
from ...settings import CALLBACK_ARGS, COMPILE
from .host_ahead import install as install_host_ahead

log = logging.getLogger("ivl3_plugin.swift")


class CompileError(RuntimeError):
    """The run cannot be compiled as asked; the message says what to change."""


def compile_disabled() -> bool:
    return not COMPILE.get()


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


def run_settings(callback: str) -> dict:
    """This callback's run settings from ``CALLBACK_ARGS``, checked (CompileError naming the field)."""
    values = CALLBACK_ARGS.get().get(callback) or {}
    if not isinstance(values, dict):
        raise CompileError(f"{CALLBACK_ARGS.name}: settings of {callback!r} must be a JSON object, got {values!r}")
    for key, value in values.items():
        problem = field_error(callback, key, value)
        if problem:
            raise CompileError(f"{CALLBACK_ARGS.name}: {problem}")
    return values


def switch_attention(model, who: str, asked: bool = False) -> None:
    """Make the LLM's attention skip padding (``recipe/row_attention.py``) and log it.  A model it cannot
    switch (eager or flash-attn attention) trains as it is, with a warning, unless ``asked`` by name."""
    try:
        log.warning("%s: %s", who, skip_padding(model))
    except ValueError as exc:
        if asked:  # asked for by name: say why it cannot be done
            raise CompileError(str(exc)) from exc
        log.warning("%s: padding not skipped: %s", who, exc)


def skip_padding_callback_class():
    """``ivl3_skip_padding``: the LLM's attention skips padding, without compiling (the ZeRO-2/3 recipes, where
    ``ivl3_compile`` cannot run, and MPO under ``swift rlhf``, where it is not verified).  Not needed beside
    ``ivl3_compile``, which does it too."""
    from swift.callbacks.base import TrainerCallback

    class Ivl3SkipPaddingCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            switch_attention(model if model is not None else self.trainer.model, SKIP_PADDING_CALLBACK)
            reference = getattr(self.trainer, "ref_model", None)  # full MPO's frozen copy (LoRA's is the policy)
            if reference is not None:
                switch_attention(reference, f"{SKIP_PADDING_CALLBACK} (reference model)")

    return Ivl3SkipPaddingCallback


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
                log.warning("ivl3 compile: %s=0, training uncompiled", COMPILE.name)
                return
            if self.compiled:  # a second train() call on the same model
                return
            settings = run_settings(CALLBACK_NAME)
            model = model if model is not None else self.trainer.model
            if settings.get("attention"):
                log.warning("ivl3 compile: %s", prefer_attention(settings["attention"]))
            if settings.get("skip_padding", True):
                switch_attention(model, "ivl3 compile", asked="skip_padding" in settings)
            if settings.get("patch_matmul", True):
                log.warning("ivl3 compile: %s", patch_convs_as_matmul(model))
            if settings.get("gelu_epilogue", True):
                log.warning("ivl3 compile: %s", fuse_vit_mlp_gelu(model))
            self.compiled = compile_layers(model)
            log.warning("ivl3 compile: %s (the first step includes the compile time)", "; ".join(self.compiled))
            if settings.get("host_ahead", True):
                for line in install_host_ahead(self.trainer, kwargs.get("train_dataloader")):
                    log.warning("ivl3 compile: host ahead: %s", line)

    return Ivl3CompileCallback


def recompute_callback_class():
    """``ivl3_recompute``: keep gradient checkpointing on the LLM's first ``layers`` layers only.

    ms-swift enables checkpointing on every layer in ``train()`` before ``on_train_begin``; this turns it
    off on the rest, so they store their activations (faster, more memory: ``ivl3 plan`` picks the count)."""
    from swift.callbacks.base import TrainerCallback

    class Ivl3RecomputeCallback(TrainerCallback):
        def __init__(self, args, trainer):
            super().__init__(args, trainer)
            settings = run_settings(RECOMPUTE_CALLBACK)
            if "layers" not in settings:
                raise CompileError(f"--callbacks {RECOMPUTE_CALLBACK} needs its layer count: "
                                   f"{CALLBACK_ARGS.name}='{{\"{RECOMPUTE_CALLBACK}\": {{\"layers\": K}}}}'")
            if not getattr(args, "gradient_checkpointing", True):
                raise CompileError(f"--callbacks {RECOMPUTE_CALLBACK} keeps checkpointing on some layers: "
                                   "it needs --gradient_checkpointing true")
            self.layers = settings["layers"]
            self.done = None

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if self.done is None:
                self.done = checkpoint_first(model if model is not None else self.trainer.model, self.layers)
                log.warning("ivl3 recompute: %s", self.done)

    return Ivl3RecomputeCallback
