"""Preference pairs (``swift rlhf``: DPO / MPO) through our template: one set of frames per pair.

ms-swift's ``Template._rlhf_encode`` encodes the chosen and the rejected conversation as two
independent samples (``_encode_truncated`` twice).  For our video template that would read and
tile every frame twice and, worse, run the token budget twice: a long rejected answer could lose
frames that its chosen twin keeps, so the pair would no longer differ in the answer only.  This
mixin encodes the pair in one go instead (``Ivl3VideoTemplate._encode_sides``): one
:class:`~ivl3_plugin.template.media.SampleMedia` (frames read and tiled once, the same pixel
tensor on both sides), one budget plan for the longer of the two answers, and the labels of
ms-swift's own layout (only the answers and their end token; ``loss_scale`` ``last_round``).

The vision tower runs once per pair too.  ms-swift's DPO collator puts the B chosen rows first and
the B rejected rows after them in one batch of 2 x B sequences, and would concatenate both sides'
pixels, so the frozen ViT would see every frame twice per forward (policy and reference).  Our
collator keeps only the chosen side's pixels and marks the batch (``REPEAT_KEY``); our
``_post_encode`` runs the vision tower on them once and uses the features for both halves, in the
order the image tokens appear (chosen rows, then rejected rows; both sides have the same frames and
tiles by construction).  A count check refuses any batch where that order would not hold.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ...template.errors import TemplateInputError

SIDES = ('chosen', 'rejected')
SHARED_KEY = 'ivl3_shared_pixels'  # per encoded pair: the rejected side's pixels are the chosen side's
REPEAT_KEY = 'ivl3_pixel_repeat'  # per collated batch: the features of `pixel_values` serve this many halves


class Ivl3PairEncoding:
    """Mixed into :class:`~ivl3_plugin.hosts.swift.template.Ivl3VideoTemplate` (before swift's class)."""

    def _rlhf_encode(self, inputs, check_rejected: bool = True) -> Dict[str, Any]:
        if inputs.rejected is None:  # KTO rows and the like: nothing to share
            return super()._rlhf_encode(inputs, check_rejected)
        chosen, rejected = inputs.chosen, inputs.rejected
        for side in (chosen, rejected):
            self._preprocess_inputs(side)

        def encode(sample_id: str):
            same_media(chosen, rejected, sample_id)
            return self._encode_sides([chosen, rejected], sample_id)

        sides = self._guarded(chosen, encode)
        _log_first_pair(self, sides)
        out: Dict[str, Any] = {}
        for prefix, encoded in zip(SIDES, sides, strict=True):
            encoded['length'] = self._get_length(encoded['input_ids'], encoded['labels'])
            for key, value in encoded.items():
                out[f'{prefix}_{key}'] = value
        if chosen.margin is not None:
            out['margin'] = float(chosen.margin)
        out[SHARED_KEY] = True
        return out

    def _rlhf_data_collator(self, batch, *, chosen_prefix: str = 'chosen_', rejected_prefix: str = 'rejected_',
                            padding_to=None) -> Dict[str, Any]:
        share = (chosen_prefix, rejected_prefix) == ('chosen_', 'rejected_') and self.sequence_parallel_size == 1 \
            and bool(batch) and all(b.get(SHARED_KEY) for b in batch)
        if share:
            for b in batch:
                b.pop(f'{rejected_prefix}pixel_values', None)
        res = super()._rlhf_data_collator(batch, chosen_prefix=chosen_prefix, rejected_prefix=rejected_prefix,
                                          padding_to=padding_to)
        if share and res.get('pixel_values') is not None:
            res[REPEAT_KEY] = 2
        return res

    def _shared_pair_embeds(self, model, inputs: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """``inputs_embeds`` of a pair batch whose pixels serve both halves (None for any other batch)."""
        repeat = inputs.pop(REPEAT_KEY, None)
        if not repeat:
            return None
        import torch

        embeds, features, mask = self._embeds_and_features(model, inputs)
        if int(mask.sum()) != repeat * features.shape[0]:
            raise TemplateInputError(
                f"template {self.spec.name}: a pair batch has {int(mask.sum())} image tokens for {features.shape[0]} "
                f"image features x {repeat} sides; the chosen and rejected rows no longer share their frames")
        features = torch.cat([features] * repeat)
        return {'inputs_embeds': embeds.masked_scatter(mask.unsqueeze(-1), features)}


_logged = []


def _log_first_pair(template, sides) -> None:
    """One line per process: what the first pair's two sides hold (tests and users read it in the run log)."""
    if _logged:
        return
    _logged.append(True)
    pixels = sides[0].get('pixel_values')
    tokens = [enc['input_ids'].count(template.img_context_id) for enc in sides]
    # ms-swift's own logger: shown at INFO in every swift run log
    from swift.utils import get_logger

    get_logger().info("ivl3 template: first preference pair: %d pixel rows (tiles) read once for both sides; "
                      "image tokens chosen %d, rejected %d (%d per tile)", 0 if pixels is None else pixels.shape[0],
                      tokens[0], tokens[1], template.num_image_token)


def same_media(chosen, rejected, sample_id: str) -> None:
    """A preference pair compares two answers to one input: the rejected side may not bring other media."""
    for kind in ('images', 'videos'):
        if list(getattr(chosen, kind) or []) != list(getattr(rejected, kind) or []):
            raise TemplateInputError(
                f"sample {sample_id}: the rejected answer has other {kind} than the chosen one; a preference "
                f"pair compares two answers to the same input (drop the row's rejected_{kind} column)")
