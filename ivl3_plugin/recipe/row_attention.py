"""Attention that skips padding: one causal SDPA call per row of a padded micro-batch, on its real tokens.

Why: at micro-batch > 1 the rows of a batch differ in length (even "equal" 16-frame samples differ by a
token or two), so transformers builds a 4-D padding mask and SDPA must honour it.  A kernel given an
explicit mask computes every (query, key) block, the half above the diagonal included, where a causal
call without a mask skips it.  On one H100, 1B InternVL3 at micro-batch 8 spent 44 % of its step in
attention this way, against ms-swift's micro-batch 1, which has no padding and so no mask.  Each row's
real tokens are one contiguous span (left or right padding), so attending within the span, causally and
without a mask, gives the real positions exactly what the masked call gives them; padded positions get
zeros, which nothing reads (they carry no label, and no real token attends to them).

Host-independent (transformers and torch only).  ``enable`` switches the LLM of a loaded model to it; the
``ivl3_compile`` ms-swift callback calls it (run setting ``skip_padding``, on by default), and so does
``ivl3_skip_padding``, which the recipes that do not compile (ZeRO-2/3, MPO) list.  Anything that is
not a plain causal mask over whole rows (packed sequences, sliding windows, a KV cache, masks with holes)
falls back to transformers' own SDPA mask and call, unchanged.
"""
from __future__ import annotations

NAME = "ivl3_rows"  # the attention implementation's name in transformers' registries
# the ms-swift callback that switches it on where the layers are not compiled (ZeRO-2/3, MPO); ivl3_compile
# switches it on itself (run setting skip_padding)
CALLBACK_NAME = "ivl3_skip_padding"


_NONE = object()
_expected = {"shape": None, "spans": _NONE}  # the next batch's spans, found on its CPU mask (expect_spans)


def expect_spans(mask) -> None:
    """Tell :func:`row_mask` the spans of the next batch from its 2-D mask on the CPU, so that the forward
    need not copy them from the GPU (a wait: ``hosts/swift/host_ahead.py``).  Used once, by the first mask
    of that shape; the next call replaces it."""
    _expected["shape"], _expected["spans"] = tuple(mask.shape), _spans(mask)


def _take_expected(mask):
    if _expected["spans"] is _NONE or tuple(mask.shape) != _expected["shape"]:
        return _NONE
    spans, _expected["spans"] = _expected["spans"], _NONE
    return spans


def _spans(mask):
    """``[B, 2]`` (first real position, real length) per row of a 2-D padding mask, on the CPU, or None
    when a row's real tokens are not one contiguous span.  One device-to-host copy per forward."""
    import torch

    mask = mask.bool()
    length = mask.sum(-1)
    first = mask.int().argmax(-1)
    last = mask.shape[-1] - 1 - mask.flip(-1).int().argmax(-1)
    contiguous = (length == 0) | (last - first + 1 == length)
    out = torch.stack([first, length, contiguous.long()], -1).cpu()
    if not bool(out[:, 2].all()):
        return None
    return out[:, :2].contiguous()


def row_mask(**kwargs):
    """transformers' mask function for ``NAME``: a ``[B, 2]`` CPU tensor of row spans when the mask is
    causal over whole rows with padding; None when there is no padding (plain causal); else the 4-D SDPA mask."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    mask = kwargs.get("attention_mask")
    plain = kwargs.get("mask_function") is causal_mask_function and not kwargs.get("q_offset") \
        and not kwargs.get("kv_offset") and kwargs.get("q_length", kwargs.get("kv_length")) == kwargs.get("kv_length")
    cache_position = kwargs.get("cache_position")  # older transformers pass this instead of the offsets
    if plain and mask is not None and mask.ndim == 2 and (
            cache_position is None or (int(cache_position[0]) == 0 and len(cache_position) == mask.shape[-1])):
        spans = _take_expected(mask)
        spans = _spans(mask) if spans is _NONE else spans
        if spans is not None:  # every row full: plain causal, no mask at all
            return None if bool((spans[:, 1] == mask.shape[-1]).all()) else spans
    return sdpa_mask(**kwargs)


def _attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' attention function for ``NAME``: query/key/value ``[B, H, T, D]``, output ``[B, T, H, D]``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    spans = attention_mask
    if spans is None or spans.ndim != 2 or spans.device.type != "cpu":  # no padding, or transformers' own mask
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    # Rows come from unbind and the output is one cat of row outputs and zero blocks: autograd then stacks the
    # rows' gradients once and hands each row its slice of the output's gradient as a view.  Slicing the
    # batch (query[b:b + 1]) made every row a full-batch zero gradient, summed row by row (B fills and B - 1
    # adds of each of query, key and value); writing rows into a zeroed output in place made autograd clone
    # the whole output gradient once per row.  Each cost 3-5 % of 1B's GPU step at micro-batch 8.
    import torch

    batch, heads, total, dim = query.shape
    pieces = []
    rows = zip(query.unbind(0), key.unbind(0), value.unbind(0))
    for (q, k, v), (start, length) in zip(rows, spans.tolist()):
        if not length:
            pieces.append(query.new_zeros(total, heads, dim))
            continue
        if length < total:
            real = slice(start, start + length)
            q, k, v = q[:, real], k[:, real], v[:, real]
        if start:
            pieces.append(query.new_zeros(start, heads, dim))
        row, _ = sdpa_attention_forward(module, q[None], k[None], v[None], None, dropout=dropout, scaling=scaling,
                                        is_causal=True, **kwargs)
        pieces.append(row[0])  # [length, H, D]
        if start + length < total:
            pieces.append(query.new_zeros(total - start - length, heads, dim))
    return torch.cat(pieces).view(batch, total, heads, dim), None


def register() -> None:
    """Add ``NAME`` to transformers' attention and mask registries (idempotent).  The attention function runs
    outside ``torch.compile`` (a compiled layer breaks its graph there): its loop depends on the batch."""
    import torch
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(NAME, torch.compiler.disable(_attention))
    AttentionMaskInterface.register(NAME, row_mask)


def enable(model) -> str:
    """Switch the LLM of ``model`` (the config its decoder layers read) from ``sdpa`` to ``NAME``.

    Only the LLM: the ViT's attention has no mask and is not causal.  Returns a line for the log; raises
    ``ValueError`` when the LLM is not on SDPA (eager or flash-attn have their own way with padding)."""
    from .compile import llm_layers

    name, stack = llm_layers(model)
    attn = getattr(stack[0], "self_attn", None)
    config = getattr(attn, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current == NAME:
        return f"{name}: attention already skips padding"
    if current != "sdpa":
        raise ValueError(f"skip_padding: {name} runs {current!r} attention, not 'sdpa'; train with --attn_impl "
                         "sdpa or set skip_padding false")
    register()
    config._attn_implementation = NAME
    if getattr(config, "_attn_implementation", None) != NAME:  # a config that refuses unknown names
        raise ValueError(f"skip_padding: {name}'s config kept {config._attn_implementation!r} attention")
    return f"{name}: attention skips padding (one causal SDPA call per row of a padded batch)"
