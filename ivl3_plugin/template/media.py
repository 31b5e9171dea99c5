"""The images and video frames of one sample, as the template lays them out.

Host-free: a host adapter unpacks its own sample object into plain values
(:meth:`SampleMedia.build`), then asks for frame labels (text), the placeholder order and
pixel tiles; budget decisions (how many frames, how many tiles) are applied with
:meth:`SampleMedia.select`.  Pixels come from the preprocessor the spec names, looked up in the
``register_preprocessors`` registry, so a plugin's tiler is the one its template tiles with.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..shared.prompts import render_instruction
from .budget import even_subset
from .errors import TemplateInputError
from .frames import FrameSet, frame_label, resolve_video
from .spec import TemplateSpec

_TAGS = re.compile(r"<(image|video|audio)>")
log = logging.getLogger("ivl3_plugin.template")


@dataclass(frozen=True)
class Slot:
    """One placeholder in the token stream: an image (``video=-1``) or frame ``frame`` of ``video``."""

    pos: int
    video: int
    index: int


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
    def build(cls, images: Sequence[Any], videos: Sequence[Any], timestamps: Optional[Sequence[Any]],
              spec: TemplateSpec, sample_id: str = "?", dtype=None) -> "SampleMedia":
        """From plain values: image sources, ``videos`` entries (frame lists, a file, a folder) and, per
        video, its frame times in seconds (``timestamps[v]``, or None)."""
        frame_sets = []
        for v, entry in enumerate(videos or []):
            ts = timestamps[v] if timestamps is not None and v < len(timestamps) else None
            fs = resolve_video(entry, spec.num_frames, ts, sample_id)
            if spec.timestamps and fs.timestamps is None:
                raise TemplateInputError(
                    f"sample {sample_id}: template {spec.name} labels frames with timestamps but video {v} has "
                    "none; converted rows keep them in a 'timestamps' column, which ms-swift drops for a "
                    "dataset given as a file path unless you pass --remove_unused_columns false (datasets "
                    "registered by name keep it)")
            frame_sets.append(fs)
        return cls(list(images or []), frame_sets, spec, sample_id, dtype)

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
            src = self.images[slot.index] if slot.video < 0 else self.videos[slot.video].frames[slot.index]
            if isinstance(src, dict):  # a host's {'bytes', 'path'} image record
                src = src.get('path') or src.get('bytes')
            if slot.video >= 0 and cap > 1:
                _check_tile_sized_frame(src, self.spec.tile_size, cap)
            kwargs = {} if self.dtype is None else {"dtype": self.dtype}
            tiler = preprocessor(self.spec)
            try:
                res = tiler(src, tile_size=self.spec.tile_size, max_tiles=cap, thumbnail=self.spec.thumbnail,
                            **kwargs)
            except TemplateInputError:
                raise
            except Exception as exc:
                raise TemplateInputError(f"sample {self.sample_id}: cannot read image {_name(src)}: {exc}") from exc
            self._tiles[key] = res.pixel_values
        return self._tiles[key]


def preprocessor(spec: TemplateSpec):
    """The tiler ``spec`` names, from the ``register_preprocessors`` registry."""
    from ..plugins import get_plugins

    try:
        return get_plugins().preprocessors.get(spec.preprocessor)
    except KeyError as exc:
        raise TemplateInputError(f"template {spec.name}: {exc.args[0]}") from None


_warned_tile_sized = set()


def _check_tile_sized_frame(src: Any, tile_size: int, cap: int) -> None:
    """Frames converted with ``--frame-size`` hold one tile's pixels: more tiles per frame add none (warned once)."""
    if cap in _warned_tile_sized or not isinstance(src, str):
        return
    try:
        from PIL import Image

        with Image.open(src) as im:  # reads the header only
            size = im.size
    except Exception:
        return  # the preprocessor reports unreadable files
    if size == (tile_size, tile_size):
        _warned_tile_sized.add(cap)
        log.warning("ivl3 template: video frames are %dx%d (ivl3 convert --frame-size) but up to %d tiles per "
                    "frame were asked for: such frames hold one tile's detail; convert without --frame-size "
                    "to give frames more tiles", tile_size, tile_size, cap)


def _name(src: Any) -> str:
    return src if isinstance(src, str) else type(src).__name__
