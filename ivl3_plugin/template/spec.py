"""What a registered template is: plain data, so hosts and plugins share one shape."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


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
    timestamps: bool = False                # "Frame{i} ({t:.1f}s): " when True
    max_tiles_per_frame: int = 1
    max_tiles_image: int = 12
    min_frames: int = 1
    on_overflow: str = "error"              # "error" or "skip" (logged) -- never silent
    extra: dict = field(default_factory=dict)
