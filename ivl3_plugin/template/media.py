"""The images and video frames of one sample, as the template lays them out.

Host-free: a host template asks it for frame labels (text), for the placeholder order,
and for pixel tiles; budget decisions (how many frames, how many tiles) are applied
with :meth:`SampleMedia.select`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from .budget import even_subset
from .errors import TemplateInputError
from .frames import FrameSet, frame_label, resolve_video
from .prompts import render_instruction
from .spec import TemplateSpec

_TAGS = re.compile(r"<(image|video|audio)>")
log = logging.getLogger("ivl3_plugin.template")


@dataclass(frozen=True)
class Slot:
    """One placeholder in the token stream: an image (``video=-1``) or frame ``frame`` of ``video``."""

    pos: int
    video: int
    index: int


def sample_ref(inputs) -> str:
    """How log lines name a sample: its ``id`` if the row kept one, else its first video/image."""
    sid = (inputs.extra_kwargs or {}).get('id') or (inputs.chat_template_kwargs or {}).get('id')
    if sid:
        return str(sid)
    first = (inputs.videos or inputs.images or [None])[0]
    if isinstance(first, (list, tuple)) and first:
        first = f"{first[0]}"
    return f"<no id column; media {first if isinstance(first, str) else type(first).__name__}>"


class SampleMedia:
    def __init__(self, images: List[Any], videos: List[FrameSet], spec: TemplateSpec, sample_id: str = "?",
                 dtype=None):
        self.images = images
        self.videos = videos
        self.spec = spec
        self.sample_id = sample_id
        self.dtype = dtype
        self.keep = self.max_frames
        self.cap = spec.max_tiles_per_frame
        self._tiles: Dict[Tuple[int, int, int], Any] = {}

    @classmethod
    def from_inputs(cls, inputs, spec: TemplateSpec, sample_id: str = "?", dtype=None) -> "SampleMedia":
        """Read ``inputs.images`` / ``inputs.videos`` (+ ``timestamps`` from the row's extra columns)."""
        ts_all = (inputs.extra_kwargs or {}).get('timestamps')
        if ts_all is None:  # rows of registered datasets carry it here (see hosts/swift_template.py)
            ts_all = (inputs.chat_template_kwargs or {}).get('timestamps')
        videos = []
        for v, entry in enumerate(inputs.videos or []):
            ts = ts_all[v] if ts_all is not None and v < len(ts_all) else None
            fs = resolve_video(entry, spec.num_frames, ts, sample_id)
            if spec.timestamps and fs.timestamps is None:
                raise TemplateInputError(
                    f"sample {sample_id}: template {spec.name} labels frames with timestamps but video {v} has "
                    "none; converted rows keep them in a 'timestamps' column, which ms-swift drops for a "
                    "dataset given as a file path unless you pass --remove_unused_columns false (datasets "
                    "registered by name keep it)")
            videos.append(fs)
        return cls(list(inputs.images or []), videos, spec, sample_id, dtype)

    # ---- prompt text ---------------------------------------------------------------------
    def prepare_messages(self, messages: List[Dict[str, Any]]) -> None:
        """``<video>\\n`` -> ``<video>`` (the frame block already ends in a newline, as in InternVL's
        own layout) and fill an empty user turn with the spec's prompt file."""
        for m in messages:
            if m.get('role') != 'user' or not isinstance(m.get('content'), str):
                continue
            content = m['content'].replace('<video>\n', '<video>')
            if self.videos and '<video>' in content and not _TAGS.sub('', content).strip():
                fs = self.videos[0]
                duration = fs.timestamps[-1] if fs.timestamps else None
                content = content + render_instruction(self.spec.prompt, self.spec.prompt_dir,
                                                       num_frames=len(fs.frames), duration=duration)
            m['content'] = content

    # ---- budget ----------------------------------------------------------------------------
    @property
    def max_frames(self) -> int:
        return max((len(v.frames) for v in self.videos), default=0)

    def select(self, keep: int, cap: int) -> None:
        self.keep, self.cap = keep, cap

    def kept(self, video: int) -> List[int]:
        n = len(self.videos[video].frames)
        return even_subset(n, max(1, min(self.keep, n)))

    def labels(self, video: int) -> List[str]:
        fs = self.videos[video]
        use_ts = self.spec.timestamps and fs.timestamps is not None
        return [frame_label(j + 1, fs.timestamps[f] if use_ts else None, self.spec.frame_label,
                            self.spec.timestamp_label)
                for j, f in enumerate(self.kept(video))]

    def slots(self, image_pos: Sequence[int], frame_pos: Sequence[int]) -> List[Slot]:
        frames = [(v, f) for v in range(len(self.videos)) for f in self.kept(v)]
        if len(image_pos) != len(self.images) or len(frame_pos) != len(frames):
            raise TemplateInputError(
                f"sample {self.sample_id}: {len(image_pos)} <image> tags for {len(self.images)} images and "
                f"{len(frame_pos)} frame slots for {len(frames)} frames")
        out = [Slot(p, -1, i) for i, p in enumerate(image_pos)]
        out += [Slot(p, v, f) for p, (v, f) in zip(frame_pos, frames)]
        return sorted(out, key=lambda s: s.pos)

    # ---- pixels ----------------------------------------------------------------------------
    def _max_tiles(self, slot: Slot) -> int:
        return self.spec.max_tiles_image if slot.video < 0 else self.cap

    def num_tiles(self, slot: Slot) -> int:
        if slot.video >= 0 and self.cap == 1:
            return 1  # one tile, no thumbnail: known without reading the frame
        return self.tiles(slot).shape[0]

    def tiles(self, slot: Slot):
        cap = self._max_tiles(slot)
        key = (slot.video, slot.index, cap)
        if key not in self._tiles:
            load_image, tile_image = _tiler()
            src = self.images[slot.index] if slot.video < 0 else self.videos[slot.video].frames[slot.index]
            if isinstance(src, dict):  # ms-swift's {'bytes', 'path'} image records
                src = src.get('path') or src.get('bytes')
            try:
                image = load_image(src)
            except Exception as exc:
                raise TemplateInputError(f"sample {self.sample_id}: cannot read image {_name(src)}: {exc}") from exc
            if slot.video >= 0 and cap > 1 and image.size == (self.spec.tile_size, self.spec.tile_size):
                _warn_tile_sized_frames(self.spec.tile_size, cap)
            kwargs = {} if self.dtype is None else {"dtype": self.dtype}
            res = tile_image(image, tile_size=self.spec.tile_size, min_tiles=1, max_tiles=cap,
                             thumbnail=self.spec.thumbnail, **kwargs)
            self._tiles[key] = res.pixel_values
        return self._tiles[key]


_warned_tile_sized = set()


def _warn_tile_sized_frames(tile_size: int, cap: int) -> None:
    """Frames converted with ``--frame-size`` hold one tile's pixels: more tiles per frame add none."""
    if cap not in _warned_tile_sized:
        _warned_tile_sized.add(cap)
        log.warning("ivl3 template: video frames are %dx%d (ivl3 convert --frame-size) but up to %d tiles per "
                    "frame were asked for: such frames hold one tile's detail; convert without --frame-size "
                    "to give frames more tiles", tile_size, tile_size, cap)


def _tiler():
    try:
        from ..tile import load_image, tile_image
    except ImportError:  # package __init__ not written yet
        from ..tile.load import load_image
        from ..tile.tiler import tile_image
    return load_image, tile_image


def _name(src: Any) -> str:
    return src if isinstance(src, str) else type(src).__name__
