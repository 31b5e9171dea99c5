"""Loading a remote-code InternVL checkpoint under transformers 5, with the release-era repair.

The ``InternVLChatModel`` classes published with InternVL2.5/3 never call ``self.post_init()`` at the end
of ``__init__``.  transformers 5 relies on it (it sets ``all_tied_weights_keys`` and friends), so
``from_pretrained`` fails with ``AttributeError: 'InternVLChatModel' object has no attribute
'all_tied_weights_keys'``.  :func:`repair_post_init` wraps the class's ``__init__`` so that a missing
``post_init()`` is made up for; :func:`load_remote_model` resolves the folder's class, repairs it and
loads it.  ``trust_remote_code`` is only ever used for a local folder the caller names.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from .errors import CheckpointError

_REPAIRED = "_ivl3_post_init_repaired"


def repair_post_init(model_cls):
    """Make ``model_cls.__init__`` call ``post_init()`` when the class itself does not (idempotent).

    A class that already calls it is unaffected: the wrapper only acts when ``all_tied_weights_keys``
    is still missing after the original ``__init__`` returned.  Returns the class.
    """
    if getattr(model_cls, _REPAIRED, False):
        return model_cls
    original = model_cls.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        # Only once the outermost __init__ is done: transformers 5 loads remote classes through a subclass that
        # adds GenerationMixin (no __init__ of its own); a subclass with its own __init__ is left to itself.
        if type(self).__init__ is __init__ and not hasattr(self, "all_tied_weights_keys"):
            self.post_init()

    model_cls.__init__ = __init__
    setattr(model_cls, _REPAIRED, True)
    return model_cls


def remote_model_class(path: os.PathLike, auto_class: str = "AutoModel"):
    """The class ``config.json``'s ``auto_map[auto_class]`` names, imported from the local folder ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a local folder (remote code is only loaded from a folder you name)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    auto_map = json.loads(config_file.read_text()).get("auto_map") or {}
    ref = auto_map.get(auto_class) or auto_map.get("AutoModel")
    if not ref:
        raise CheckpointError(f"{config_file}: no auto_map entry for {auto_class} (not a remote-code checkpoint)")
    module_file = folder / (ref.split(".")[0] + ".py")
    if not module_file.is_file():
        raise CheckpointError(f"{folder}: auto_map names {ref} but {module_file.name} is missing")
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    return get_class_from_dynamic_module(ref, str(folder.resolve()))


def img_context_token_id(path: os.PathLike) -> int:
    """The id of ``<IMG_CONTEXT>`` in the folder's tokenizer (what callers set as ``img_context_token_id``)."""
    from .tokenizer_files import token_id

    found = token_id(Path(path), "<IMG_CONTEXT>")
    if found is None:
        raise CheckpointError(f"{path}: the tokenizer has no <IMG_CONTEXT> token")
    return found


def prepare_remote_class(path: os.PathLike, auto_class: str = "AutoModelForCausalLM"):
    """Import the folder's remote model class and repair it, before anything loads it.

    transformers caches dynamic modules by content hash, so a later ``Auto*.from_pretrained(path,
    trust_remote_code=True)`` -- ms-swift's loader included -- builds the same, repaired class.  This is the
    call a host makes before its loader runs.  Returns the class.
    """
    return repair_post_init(remote_model_class(path, auto_class))


def load_remote_model(path: os.PathLike, auto_class: str = "AutoModel", **kwargs):
    """Load a remote-code InternVL checkpoint from a local folder with transformers 5.

    ``Auto*.from_pretrained(path, trust_remote_code=True)`` after :func:`prepare_remote_class` (the
    release-era repair), with ``img_context_token_id`` set from the folder's tokenizer; ``kwargs``
    (``dtype``, ``device_map``…) go to ``from_pretrained``.
    """
    import transformers

    folder = str(Path(path).resolve())
    prepare_remote_class(folder, auto_class)
    model = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True, **kwargs)
    model.img_context_token_id = img_context_token_id(path)
    return model
