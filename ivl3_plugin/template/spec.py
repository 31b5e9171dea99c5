"""What a registered template is: plain data, so hosts and plugins share one shape."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ..shared.layout import DEFAULT_NUM_FRAMES, TILE_SIZE

# InternVL3's own default system prompt (its ``internvl2_5`` conversation); used for both checkpoint formats.
INTERNVL3_SYSTEM = ("你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
                    "多模态大语言模型。")

# Fields a user may change for one run without writing a plugin (``ivl3 train R template.FIELD=VALUE``,
# or the setting TEMPLATE_ARGS keyed by template name); the others define the template.
RUN_FIELDS = {"prompt": str, "system": str, "timestamps": bool, "max_tiles_per_frame": int,
              "max_tiles_image": int, "min_frames": int, "num_frames": int, "on_overflow": str,
              "thumbnail": bool, "preprocessor": str}


class TemplateArgsError(ValueError):
    """Run settings for a template that it does not have, or of the wrong type; names template and field."""


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
    num_frames: int = DEFAULT_NUM_FRAMES    # frames sampled from a raw video file
    tile_size: int = TILE_SIZE
    thumbnail: bool = True                  # InternVL's extra global tile when an image has >1 tile
    preprocessor: str = "internvl_dynamic"  # the registered tiler (register_preprocessors) that tiles
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.on_overflow not in ("error", "skip"):
            raise ValueError(f"template {self.name}: on_overflow must be 'error' or 'skip', got {self.on_overflow!r}")
        for name in ("max_tiles_per_frame", "max_tiles_image", "min_frames", "num_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"template {self.name}: {name} must be >= 1")

    def with_run_args(self, args: Mapping[str, Any]) -> "TemplateSpec":
        """This spec with run settings applied (``{"on_overflow": "skip", "max_tiles_image": 6}``)."""
        return replace(self, **check_run_args(self.name, args)) if args else self

    def for_run(self, template_args: Optional[Mapping[str, Mapping[str, Any]]] = None) -> "TemplateSpec":
        """This spec with its own entry of TEMPLATE_ARGS (``{name: {field: value}}``), read from the
        setting when ``template_args`` is not given; other templates' entries are not applied."""
        if template_args is None:
            from ..settings import TEMPLATE_ARGS

            template_args = TEMPLATE_ARGS.get()
        return self.with_run_args(template_args.get(self.name) or {})


def check_run_args(template: str, args: Mapping[str, Any]) -> Dict[str, Any]:
    """Typed copies of ``args`` (strings from a command line are converted), or a clear error."""
    if not isinstance(args, Mapping):
        raise TemplateArgsError(f"template {template}: run settings must be a mapping of field: value, got {args!r}")
    out: Dict[str, Any] = {}
    for key, value in args.items():
        kind = RUN_FIELDS.get(key)
        if kind is None:
            known = ", ".join(sorted(RUN_FIELDS))
            defined = {f.name for f in fields(TemplateSpec)}
            why = "defines the template (register a variant in a plugin)" if key in defined else "is not a field"
            raise TemplateArgsError(f"template {template}: {key!r} {why}; run settings: {known}")
        out[key] = _typed(template, key, value, kind)
    return out


def _typed(template: str, key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            from ..settings import SettingError, parse_bool

            try:
                return parse_bool(value, f"template {template}: {key}")
            except SettingError as exc:
                raise TemplateArgsError(str(exc)) from None
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif kind is str and isinstance(value, str):
        return value
    raise TemplateArgsError(f"template {template}: {key} must be {kind.__name__}, got {value!r}")
