"""What a registered template is: plain data, so hosts and plugins share one shape."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Optional

# InternVL3's own default system prompt (its ``internvl2_5`` conversation); used for both checkpoint formats.
INTERNVL3_SYSTEM = ("你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
                    "多模态大语言模型。")

# Settings a user may change per run without writing a plugin: IVL3_<FIELD> in the environment
# (ms-swift passes the environment on to every rank and dataset worker).
ENV_FIELDS = {"prompt": str, "system": str, "timestamps": bool, "max_tiles_per_frame": int,
              "max_tiles_image": int, "min_frames": int, "num_frames": int, "on_overflow": str,
              "thumbnail": bool}


@dataclass(frozen=True)
class TemplateSpec:
    """An InternVL3-style video prompt template.

    Host adapters (``ivl3_plugin.hosts.*``) turn a spec into the host's own
    template class; nothing here imports a host.
    """

    name: str
    prompt: str = "concise"                 # Jinja file stem in prompt_dir (templates/<prompt>.j2)
    prompt_dir: Optional[Path] = None       # None: the package's templates/ folder
    system: Optional[str] = None            # None: InternVL3's default system prompt
    frame_label: str = "Frame{i}: "         # one layout for training and inference
    timestamps: bool = False                # use timestamp_label when True
    timestamp_label: str = "Frame{i} ({t:.1f}s): "
    max_tiles_per_frame: int = 1
    max_tiles_image: int = 12
    min_frames: int = 1
    on_overflow: str = "error"              # "error" or "skip" (logged) -- never silent
    num_frames: int = 8                     # frames sampled from a raw video file
    tile_size: int = 448
    thumbnail: bool = True                  # InternVL's extra global tile when an image has >1 tile
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.on_overflow not in ("error", "skip"):
            raise ValueError(f"template {self.name}: on_overflow must be 'error' or 'skip', got {self.on_overflow!r}")
        for name in ("max_tiles_per_frame", "max_tiles_image", "min_frames", "num_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"template {self.name}: {name} must be >= 1")

    def with_env(self, environ=None) -> "TemplateSpec":
        """This spec with ``IVL3_<FIELD>`` overrides (e.g. ``IVL3_TIMESTAMPS=1 IVL3_ON_OVERFLOW=skip``)."""
        env = os.environ if environ is None else environ
        changes = {}
        for f in fields(self):
            kind = ENV_FIELDS.get(f.name)
            raw = env.get(f"IVL3_{f.name.upper()}")
            if kind is None or raw is None or raw == "":
                continue
            if kind is bool:
                changes[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif kind is int:
                try:
                    changes[f.name] = int(raw)
                except ValueError:
                    raise ValueError(f"IVL3_{f.name.upper()}={raw!r} is not an integer") from None
            else:
                changes[f.name] = raw
        return replace(self, **changes) if changes else self
