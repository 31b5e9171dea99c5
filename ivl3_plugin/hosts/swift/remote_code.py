"""Remote-code InternVL3 checkpoints (``InternVLChatModel``, as OpenGVLab publishes them) in ms-swift, out of the box.

ms-swift loads them with ``InternVLLoader`` (``model_type internvl_chat``). Three things break there on
transformers 5 that this module repairs or explains before the remote code runs:

* **release-era classes never call ``post_init()``**: ``from_pretrained`` then fails with
  ``'InternVLChatModel' object has no attribute 'all_tied_weights_keys'``. Before the loader imports the
  class we wrap its ``__init__`` (``checkpoint/remote_load.py``; a class that calls it is unchanged),
  logged once, only for the folders that need it;
* **timm**: the official ``modeling_intern_vit.py`` imports it; without it the failure surfaces deep in
  transformers' dynamic-module loader, so we check first and say what to install;
* **flash-attn**: hub configs ask for ``flash_attention_2``, and ``InternVLChatModel`` has no SDPA path.
  With flash-attn installed it is used; without it, and with no ``--attn_impl`` given, we choose eager
  and say why it is slow and how to avoid it (convert once with ``ivl3 checkpoint to-hf`` for SDPA,
  compiled layers and Liger). An explicit ``--attn_impl flash_attn`` without flash-attn is refused.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import Optional

log = logging.getLogger("ivl3_plugin.swift")

_TIMM_IMPORT = re.compile(r"^\s*(from\s+timm[\s.]|import\s+timm\b)", re.M)
_said: set = set()


class RemoteCodeError(RuntimeError):
    """A remote-code checkpoint that cannot load here; the message says what to install or pass."""


def _once(key: str, level: int, message: str, *args) -> None:
    if key not in _said:
        _said.add(key)
        log.log(level, message, *args)


def is_remote_checkpoint(model_dir) -> bool:
    config = Path(str(model_dir)) / "config.json"
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return "InternVLChatModel" in (data.get("architectures") or []) or data.get("model_type") == "internvl_chat"


def check_remote_imports(model_dir) -> None:
    """Refuse, naming the file, a remote code that imports timm when timm is not installed."""
    if importlib.util.find_spec("timm") is not None:
        return
    for path in sorted(Path(str(model_dir)).glob("*.py")):
        if _TIMM_IMPORT.search(path.read_text(errors="replace")):
            raise RemoteCodeError(
                f"{path} imports timm, which is not installed: pip install timm (included in "
                "'ivl3-plugin[swift]'), or convert the checkpoint once with `ivl3 checkpoint to-hf SRC DST`")


def wants_flash(config) -> bool:
    """Does the checkpoint's config ask for flash attention (hub configs do)?"""
    from swift.model.utils import AttnImpl

    for cfg in (config, getattr(config, "llm_config", None), getattr(config, "vision_config", None)):
        if cfg is None:
            continue
        for key in AttnImpl.attn_impl_keys:
            if getattr(cfg, key, None) in ("flash_attention_2", "flash_attn"):
                return True
        if any(getattr(cfg, key, False) is True for key in AttnImpl.use_flash_attn_keys):
            return True
    return False


def choose_attn_impl(requested: Optional[str], config) -> Optional[str]:
    """The attention implementation for an InternVLChatModel: the user's, flash-attn when installed, else eager."""
    has_flash = importlib.util.find_spec("flash_attn") is not None
    if requested in ("flash_attn", "flash_attention_2") and not has_flash:
        raise RemoteCodeError("--attn_impl flash_attn needs the flash-attn package (pip install "
                              "'ivl3-plugin[flash-attn]', GPU only); or leave --attn_impl out to train with eager "
                              "attention, or convert once with `ivl3 checkpoint to-hf` to train with SDPA")
    if requested is not None:
        return requested
    if has_flash or not wants_flash(config):
        return None  # the checkpoint's own choice works here
    _once("eager", logging.WARNING,
          "ivl3: this remote-code InternVL3 checkpoint asks for flash_attention_2, but flash-attn is not installed "
          "and InternVLChatModel has no SDPA path: training with EAGER attention (slow, and memory grows with "
          "the square of 4-16k-token video samples). Install flash-attn, or convert once with `ivl3 checkpoint "
          "to-hf SRC DST` and train the -hf copy (SDPA, compiled layers, Liger): docs/checkpoints.md")
    return "eager"


def install() -> None:
    """Wrap ms-swift's InternVL loader (idempotent): the checks above run before the remote code does."""
    from swift.model.models.internlm import InternVLLoader

    if getattr(InternVLLoader, "_ivl3_remote_code", False):
        return
    original_update, original_get_model = InternVLLoader._update_attn_impl, InternVLLoader.get_model

    def _update_attn_impl(self, config):
        self.attn_impl = choose_attn_impl(self.attn_impl, config)
        return original_update(self, config)

    def get_model(self, model_dir, *args, **kwargs):
        if is_remote_checkpoint(model_dir):
            from ...checkpoint.remote_load import prepare_remote_class

            check_remote_imports(model_dir)
            cls = prepare_remote_class(model_dir, "AutoModelForCausalLM")
            _once(f"repair:{cls.__module__}", logging.INFO, "ivl3: %s prepared for transformers 5 (post_init() is "
                  "made up for if its __init__ does not call it)", cls.__name__)
        return original_get_model(self, model_dir, *args, **kwargs)

    InternVLLoader._update_attn_impl = _update_attn_impl
    InternVLLoader.get_model = get_model
    InternVLLoader._ivl3_remote_code = True
