"""Preference pairs (``swift rlhf``: DPO / MPO) through our template: one set of frames per pair.

ms-swift's ``Template._rlhf_encode`` encodes the chosen and the rejected conversation as two
independent samples (``_encode_truncated`` twice).  For our video template that would read and
tile every frame twice and, worse, run the token budget twice: a long rejected answer could lose
frames that its chosen twin keeps, so the pair would no longer differ in the answer only.  This
mixin encodes the pair in one go instead (``Ivl3VideoTemplate._encode_sides``): one
:class:`~ivl3_plugin.template.media.SampleMedia` (frames read and tiled once, the same pixel
tensor on both sides), one budget plan for the longer of the two answers, and the labels of
ms-swift's own layout (only the answers and their end token; ``loss_scale`` ``last_round``).

Why the pixels still reach the model twice: ms-swift's DPO collator concatenates the chosen and
the rejected rows into one batch of 2 x B sequences, and the vision tower runs inside each
forward on that batch (``_post_encode``).  Feeding the features once would need the collator and
the forward hook to agree on a row order that ms-swift does not promise; see
docs/preference-training.md.
"""
from __future__ import annotations

from typing import Any, Dict

from ...template.errors import TemplateInputError

SIDES = ('chosen', 'rejected')


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
        out: Dict[str, Any] = {}
        for prefix, encoded in zip(SIDES, sides):
            encoded['length'] = self._get_length(encoded['input_ids'], encoded['labels'])
            for key, value in encoded.items():
                out[f'{prefix}_{key}'] = value
        if chosen.margin is not None:
            out['margin'] = float(chosen.margin)
        return out


def same_media(chosen, rejected, sample_id: str) -> None:
    """A preference pair compares two answers to one input: the rejected side may not bring other media."""
    for kind in ('images', 'videos'):
        if list(getattr(chosen, kind) or []) != list(getattr(rejected, kind) or []):
            raise TemplateInputError(
                f"sample {sample_id}: the rejected answer has other {kind} than the chosen one; a preference "
                f"pair compares two answers to the same input (drop the row's rejected_{kind} column)")
