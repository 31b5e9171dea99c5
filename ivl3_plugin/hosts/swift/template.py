"""Our video template as an ms-swift template, one class for both InternVL3 checkpoint formats.

Token layout (same for ``internvl_chat`` remote-code and ``internvl`` -hf checkpoints)::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n
    Frame1: <img><IMG_CONTEXT>x256xtiles</img>\\nFrame2: ...</img>\\n{instruction}<|im_end|>\\n
    <|im_start|>assistant\\n{summary}<|im_end|>\\n          <- only the answer and its end are labels

The frames, budget and labels are decided by host-free code in ``ivl3_plugin.template``;
this module only wires them into swift's ``Template`` and picks the vision forward by
the loaded model (``extract_feature`` for InternVLChatModel, ``get_image_features`` for -hf).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from swift.dataset.preprocessor import MessagesPreprocessor
from swift.template.base import MaxLengthError, Template
from swift.template.templates.internvl import InternvlhfTemplate, InternvlTemplate
from swift.template.templates.utils import ChatmlTemplateMeta
from swift.template.utils import findall

from ...settings import TEMPLATE_ARGS
from ...shared.layout import tokens_per_tile
from ...shared.prompts import image_markup_in
from ...template.errors import BudgetError, TemplateInputError
from ...template.media import SampleMedia
from ...template.spec import INTERNVL3_SYSTEM, TemplateSpec
from .pairs import Ivl3PairEncoding

log = logging.getLogger("ivl3_plugin.template")

IMAGE_SLOT, FRAME_SLOT = -100, -200


class _Measured(Exception):
    """Carries a sample's planned token count out of :meth:`Ivl3VideoTemplate.ivl3_length`'s encode."""

    def __init__(self, length: int):
        super().__init__(length)
        self.length = length


class Ivl3FatalSampleError(BaseException):
    """A sample we refuse to drop silently.

    ms-swift catches every ``Exception`` raised while encoding and trains on a random other
    sample instead (unless ``--strict true``).  This derives from ``BaseException`` so that
    a bad sample stops the run with its id and reason instead.
    """


@dataclass
class Ivl3TemplateMeta(ChatmlTemplateMeta):
    """swift's chatml meta plus our :class:`TemplateSpec` (pickled with the template into workers)."""

    ivl3_spec: Optional[TemplateSpec] = None


class Ivl3VideoTemplate(Ivl3PairEncoding, InternvlhfTemplate):
    """InternVL3 video-summary template for ``internvl_chat`` and ``internvl`` (-hf) checkpoints
    (preference pairs for ``swift rlhf``: :mod:`.pairs`)."""

    placeholder_tokens = ['<IMG_CONTEXT>']
    support_padding_free = True

    def init_env_args(self):
        Template.init_env_args(self)
        self.spec: TemplateSpec = (self.template_meta.ivl3_spec or TemplateSpec(name="ivl3_video")).for_run()
        self.img_context_id = self.tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')
        self.num_image_token = _tokens_per_tile(self.config, self.spec.tile_size)

    # ---- text layout -------------------------------------------------------------------
    def replace_tag(self, media_type, index, inputs) -> List:
        if self.mode in {'vllm', 'lmdeploy', 'sglang'}:
            raise TemplateInputError(f"template {self.spec.name} supports the transformers engine only "
                                     f"(got infer backend {self.mode!r})")
        if media_type == 'image':
            return ['<img>', [IMAGE_SLOT], '</img>\n']
        if media_type == 'video':
            media: SampleMedia = inputs.ivl3_media
            context = []
            for label in media.labels(index):
                context += [label, '<img>', [FRAME_SLOT], '</img>\n']
            return context
        raise TemplateInputError(f"template {self.spec.name} does not take {media_type} inputs")

    def _text_layout(self, inputs, media: SampleMedia) -> Dict[str, Any]:
        """Encode the conversation with one placeholder per image/frame (cheap: no pixels)."""
        trial = _fresh_copy(inputs)
        trial.ivl3_media = media
        return Template._encode(self, trial)

    # ---- encode ----------------------------------------------------------------------------
    def ivl3_length(self, row: Dict[str, Any]) -> int:
        """The token count this sample will train with (frames and tiles as the budget keeps them),
        without reading pixels when frames are one tile each: the length ``ivl3_length_group`` sorts by.
        A sample that ``on_overflow=skip`` would skip counts as ``max_length``."""
        self._ivl3_measuring = True
        try:
            self.encode(row)
        except _Measured as done:
            return done.length
        except MaxLengthError:
            return int(self.max_length or 0)
        finally:
            self._ivl3_measuring = False
        raise RuntimeError("ivl3 template: encode ended before its budget plan")  # pragma: no cover

    def _encode(self, inputs) -> Dict[str, Any]:
        return self._guarded(inputs, lambda sid: self._encode_sides([inputs], sid))[0]

    def _guarded(self, inputs, encode):
        """Run ``encode(sample_id)``; a budget overflow or bad input stops the run naming the sample
        (or is a logged skip with ``on_overflow=skip``), never ms-swift's silent resampling."""
        sample_id = sample_ref(inputs)
        try:
            return encode(sample_id)
        except BudgetError as exc:
            if self.spec.on_overflow == 'skip':
                log.warning("ivl3 template: SKIPPED sample %s (on_overflow=skip): %s", sample_id, exc)
                raise MaxLengthError(str(exc)) from exc
            log.error("ivl3 template: %s", exc)
            hint = json.dumps({self.spec.name: {"on_overflow": "skip"}})
            raise Ivl3FatalSampleError(f"{exc} (to skip such samples with a warning instead: ivl3 train … "
                                       f"template.on_overflow=skip, or {TEMPLATE_ARGS.name}='{hint}')") from exc
        except TemplateInputError as exc:
            log.error("ivl3 template: %s", exc)
            raise Ivl3FatalSampleError(str(exc)) from exc

    def _encode_sides(self, sides: List[Any], sample_id: str) -> List[Dict[str, Any]]:
        """Encode conversations that share one set of media: one (SFT), or chosen + rejected (RLHF).

        The frames are read and tiled once (one :class:`SampleMedia`), and one budget plan serves every
        side: the frames and tiles that make the *longest* side fit ``max_length``, so each side sees
        the same frames and none is cut differently."""
        spec, first = self.spec, sides[0]
        for side in sides:
            refuse_markup_in_answers(side.messages, sample_id)
        media = SampleMedia.build(first.images, first.videos, _timestamps(first), spec, sample_id,
                                  self.model_info.torch_dtype)
        for side in sides:
            media.prepare_messages(side.messages)
        layouts: Dict[tuple, Dict[str, Any]] = {}

        def layout(i: int, keep: int, cap: int) -> Dict[str, Any]:
            media.select(keep, cap)  # also when cached: the slots read below follow the selection
            if (i, keep, cap) not in layouts:
                layouts[(i, keep, cap)] = self._text_layout(sides[i], media)
            return layouts[(i, keep, cap)]

        def length_of(indices, cap) -> int:
            lengths = []
            for i in range(len(sides)):
                enc = layout(i, len(indices), cap)
                slots = self._slots(enc['input_ids'], media)
                lengths.append(len(enc['input_ids']) - len(slots)
                               + sum(self.num_image_token * media.num_tiles(s) for s in slots))
            return max(lengths)

        from ...template.budget import plan_budget

        plan = plan_budget(media.max_frames or 1, spec.max_tiles_per_frame, self.max_length, length_of,
                           min_frames=spec.min_frames, sample_id=sample_id)
        if plan.reduced:
            log.warning("ivl3 template: sample %s reduced to fit max_length %s: %s",
                        sample_id, self.max_length, plan.describe())
        if getattr(self, '_ivl3_measuring', False):
            raise _Measured(plan.length)
        keep = len(plan.frame_indices)
        media.select(keep, plan.tile_cap)
        pixel_values = None
        out = []
        for i in range(len(sides)):
            encoded = dict(layout(i, keep, plan.tile_cap))
            slots = self._slots(encoded['input_ids'], media)
            tiles = [media.tiles(s) for s in slots]  # cached in `media`: read and tiled once for all sides

            def new_tokens(j, tiles=tiles):
                return [self.img_context_id] * (self.num_image_token * tiles[j].shape[0])

            encoded['input_ids'], encoded['labels'], encoded['loss_scale'] = self._extend_tokens(
                encoded['input_ids'], encoded['labels'], encoded.get('loss_scale'), [s.pos for s in slots],
                new_tokens)
            if tiles:
                if pixel_values is None:
                    import torch

                    pixel_values = torch.cat(tiles).to(self.model_info.torch_dtype)
                encoded['pixel_values'] = pixel_values  # the same tensor for every side
            out.append(encoded)
        return out

    @staticmethod
    def _slots(input_ids: List[int], media: SampleMedia):
        """Placeholders in text order, each tied to its image or frame."""
        images = findall(input_ids, IMAGE_SLOT)
        frames = findall(input_ids, FRAME_SLOT)
        return media.slots(images, frames)

    # ---- model side: one template, both checkpoint formats --------------------------------
    def _post_encode(self, model, inputs: Dict[str, Any]) -> Dict[str, Any]:
        shared = self._shared_pair_embeds(model, inputs)  # a preference batch: one vision pass per pair
        if shared is not None:
            return shared
        if inputs.get('pixel_values') is None:  # text only (and ms-swift's dummy ViT pass under DeepSpeed)
            if hasattr(model, 'extract_feature'):  # remote-code InternVLChatModel
                return InternvlTemplate._post_encode(self, model, inputs)
            return InternvlhfTemplate._post_encode(self, model, inputs)
        return self._frame_embeds(model, inputs)

    def _frame_embeds(self, model, inputs: Dict[str, Any]) -> Dict[str, Any]:
        """The text embeddings with the frames' features in the image-token slots, for both formats.

        ``masked_scatter`` fills the slots in order without asking the GPU how many there are; ms-swift's
        remote-code path assigns through a boolean index, which waits for the GPU once per forward.  The
        slot count equals the feature count by construction (the budget keeps whole frames)."""
        embeds, features, slots = self._embeds_and_features(model, inputs)
        return {'inputs_embeds': embeds.masked_scatter(slots.unsqueeze(-1), features)}

    def _embeds_and_features(self, model, inputs: Dict[str, Any]):
        """The batch's text embeddings, its pixels' features as ``(tiles x tokens, hidden)`` rows in their
        dtype, and the image-token slots (``[B, T]`` bool): what the slots are filled from."""
        embedding = model.get_input_embeddings()
        input_ids = inputs['input_ids']
        embeds = embedding(input_ids).to(embedding.weight.device)
        features = self._vision_features(model, inputs['pixel_values'].to(embeds.device))
        features = features.reshape(-1, features.shape[-1]).to(embeds.device, embeds.dtype)
        return embeds, features, input_ids == self.img_context_id

    def _vision_features(self, model, pixel_values):
        """(tiles, tokens per tile, hidden) features of the loaded format's vision tower + projector."""
        if hasattr(model, 'extract_feature'):
            return model.extract_feature(pixel_values)
        features = model.model.get_image_features(
            pixel_values, vision_feature_layer=self.config.vision_feature_layer,
            vision_feature_select_strategy=self.config.vision_feature_select_strategy)
        return getattr(features, 'pooler_output', features)


def refuse_markup_in_answers(messages, sample_id: str) -> None:
    """An answer with ``<IMG_CONTEXT>``/``<img>``… in its text would be tokenised as image slots: the
    frames would no longer line up (ms-swift then fails deep in the forward, or trains on shifted
    features), so the row is refused here, naming it."""
    for message in messages or []:
        content = message.get('content') if isinstance(message, dict) else None
        if message.get('role') == 'assistant' and isinstance(content, str):
            found = image_markup_in(content)
            if found:
                raise TemplateInputError(f"{sample_id}: an answer contains image markup {', '.join(found)} "
                                         f"({content[:60]!r}); as text it would be read as image slots — remove "
                                         f"it from the summary (ivl3 pairs leaves such sampled candidates out)")


def sample_ref(inputs) -> str:
    """How log lines name a sample: its ``id`` if the row kept one, else its first video/image."""
    sid = (inputs.extra_kwargs or {}).get('id') or (inputs.chat_template_kwargs or {}).get('id')
    if sid:
        return str(sid)
    first = (inputs.videos or inputs.images or [None])[0]
    if isinstance(first, (list, tuple)) and first:
        first = f"{first[0]}"
    return f"<no id column; media {first if isinstance(first, str) else type(first).__name__}>"


def _timestamps(inputs):
    """Per-video frame times: a file-path dataset keeps them among the extra columns, a dataset
    registered by name in ``chat_template_kwargs`` (see :class:`Ivl3RowPreprocessor`)."""
    ts = (inputs.extra_kwargs or {}).get('timestamps')
    return ts if ts is not None else (inputs.chat_template_kwargs or {}).get('timestamps')


def _fresh_copy(inputs):
    import copy

    trial = copy.copy(inputs)
    trial.messages = copy.deepcopy(inputs.messages)
    trial.images = list(inputs.images)
    trial.videos = list(inputs.videos)
    for k in ('image_idx', 'video_idx', 'audio_idx', 'ref_idx', 'bbox_idx'):
        setattr(trial, k, 0)
    return trial


def _tokens_per_tile(config, tile_size: int) -> int:
    """The model config's ``image_seq_length``, else (tile / patch)^2 x downsample^2 (256 for InternVL3)."""
    seq = getattr(config, 'image_seq_length', None)
    if seq:
        return int(seq)
    vision = getattr(config, 'vision_config', None)
    patch = getattr(vision, 'patch_size', 14) if vision is not None else 14
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    return tokens_per_tile(tile_size, patch, getattr(config, 'downsample_ratio', 0.5))


KEPT_COLUMNS = ('id', 'timestamps')


class Ivl3RowPreprocessor(MessagesPreprocessor):
    """ms-swift keeps only its own columns; this moves ``id`` and ``timestamps`` into
    ``chat_template_kwargs`` (a column it keeps) so the template can label frames with times and
    name a sample in its log lines. Used for datasets registered by name (``hosts/swift/install.py``)."""

    def preprocess(self, row: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        kept = {k: row.pop(k) for k in KEPT_COLUMNS if row.get(k) is not None}
        row = super().preprocess(row)
        if row is not None and kept:
            row['chat_template_kwargs'] = {**(row.get('chat_template_kwargs') or {}), **kept}
        return row


def template_metas(spec: TemplateSpec) -> List:
    """One swift template per spec; it serves both checkpoint formats (see docs/template.md)."""
    return [Ivl3TemplateMeta(spec.name, template_cls=Ivl3VideoTemplate,
                             default_system=spec.system or INTERNVL3_SYSTEM, ivl3_spec=spec)]
