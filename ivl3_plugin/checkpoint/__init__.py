"""The user's own InternVL3 checkpoint, in and out (host-free).

* :func:`detect_format` -- ``"remote"`` (OpenGVLab remote code, ``InternVLChatModel``) or ``"hf"``
  (transformers-native ``InternVLForConditionalGeneration``);
* :func:`to_hf` / :func:`to_remote` / :func:`convert` -- checked, streamed, atomic conversion
  (:mod:`.converter`);
* :func:`export` -- a LoRA run merged into its base (or a full checkpoint) written in either format
  (:mod:`.export`);
* :func:`describe` -- what ``ivl3 checkpoint info`` prints (:mod:`.info`);
* :func:`load_remote_model` / :func:`repair_post_init` -- release-era remote code under transformers 5
  (:mod:`.remote_load`).

These modules import only the standard library at import time; torch, transformers and safetensors are
imported inside the functions that need them.  See docs/checkpoints.md.
"""
from .converter import convert, detect_format, to_hf, to_remote
from .errors import CheckpointError
from .export import export
from .info import describe
from .remote_load import load_remote_model, repair_post_init

__all__ = ["CheckpointError", "convert", "describe", "detect_format", "export", "load_remote_model",
           "repair_post_init", "to_hf", "to_remote"]
