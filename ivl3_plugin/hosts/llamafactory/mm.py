"""Our template inside LLaMA-Factory: a multimodal plugin + ``register_template`` from a TemplateSpec.

Imported only in the llamafactory environment (it imports llamafactory at the
top so the plugin class is a plain module-level class: picklable into
``datasets.map`` workers).  The prompt layout is the one our ms-swift template
writes, so a model trained in one host is asked the same way in the other::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n
    Frame1: <img><IMG_CONTEXT>x256</img>\\nFrame2: …</img>\\n{instruction}<|im_end|>\\n<|im_start|>assistant\\n
"""
from __future__ import annotations

import logging
from copy import deepcopy
from dataclasses import dataclass

from llamafactory.data.formatter import StringFormatter
from llamafactory.data.mm_plugin import InternVLPlugin, get_mm_plugin
from llamafactory.data.template import register_template
from llamafactory.extras.constants import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER

from ...template.frames import frame_label
from ...template.spec import INTERNVL3_SYSTEM, TemplateSpec

DEFAULT_PREPROCESSOR = TemplateSpec.__dataclass_fields__["preprocessor"].default

log = logging.getLogger("ivl3_plugin.llamafactory")

IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
_warned: set = set()


def _spec(name: str) -> TemplateSpec:
    from ...plugins import get_plugins

    return get_plugins().templates.get(name).for_run()


@dataclass
class Ivl3VideoPlugin(InternVLPlugin):
    """InternVL's pixel handling (LLaMA-Factory's), with our frame labels from the TemplateSpec.

    LLaMA-Factory gives every video frame one 448² tile through its own InternVL processor and
    drops per-frame timestamps from dataset rows, so a spec asking for more tiles, for timestamps or
    for another registered preprocessor is reported (once per template) and run with one tile,
    ``Frame{i}:`` labels and LLaMA-Factory's tiling.
    """

    ivl3_template: str = "ivl3_video"

    def _labels(self):
        spec = _spec(self.ivl3_template)
        own_tiler = spec.preprocessor != DEFAULT_PREPROCESSOR
        if (spec.timestamps or spec.max_tiles_per_frame > 1 or own_tiler) and spec.name not in _warned:
            _warned.add(spec.name)
            log.warning("template %s: LLaMA-Factory runs one tile per frame without timestamps, tiled by its own "
                        "InternVL processor (spec asks timestamps=%s, max_tiles_per_frame=%s, preprocessor=%s)",
                        spec.name, spec.timestamps, spec.max_tiles_per_frame, spec.preprocessor)
        return spec

    def process_messages(self, messages, images, videos, audios, processor):
        self._validate_input(processor, images, videos, audios)
        self._validate_messages(messages, images, videos, audios)
        spec = self._labels()
        seqlen = getattr(processor, "image_seq_length") if self.expand_mm_tokens else 1
        mm = self._get_mm_inputs(images, videos, audios, processor)
        image_tiles = list(mm.get("image_num_patches", []))
        frame_tiles = list(mm.get("video_num_patches", []))
        frames_per_video = _counts(mm.get("video_patch_indices"))  # cumulative frame counts -> per video

        def image_block(tiles: int) -> str:
            return IMG_START + IMG_CONTEXT * (seqlen * int(tiles)) + IMG_END

        messages = deepcopy(messages)
        next_image, next_video, next_frame = 0, 0, 0
        for message in messages:
            content = message["content"]
            while IMAGE_PLACEHOLDER in content:
                content = content.replace(IMAGE_PLACEHOLDER, image_block(image_tiles[next_image]), 1)
                next_image += 1
            while VIDEO_PLACEHOLDER in content:
                n = frames_per_video[next_video]
                lines = [frame_label(i + 1, fmt=spec.frame_label) + image_block(frame_tiles[next_frame + i])
                         for i in range(n)]
                content = content.replace(VIDEO_PLACEHOLDER, "\n".join(lines), 1)
                next_frame += n
                next_video += 1
            message["content"] = content
        return messages


def _counts(cumulative) -> list:
    out, prev = [], 0
    for c in list(cumulative or []):
        out.append(int(c) - prev)
        prev = int(c)
    return out


def register_spec(spec: TemplateSpec, name: str) -> None:
    """``register_template`` for one of our specs (ChatML turns, InternVL3's system prompt)."""
    register_template(
        name=name,
        format_user=StringFormatter(slots=["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"]),
        format_assistant=StringFormatter(slots=["{{content}}<|im_end|>\n"]),
        format_system=StringFormatter(slots=["<|im_start|>system\n{{content}}<|im_end|>\n"]),
        default_system=spec.system or INTERNVL3_SYSTEM,
        stop_words=["<|im_end|>"],
        mm_plugin=get_mm_plugin("ivl3_video", image_token="<image>", video_token="<video>", ivl3_template=name),
    )
