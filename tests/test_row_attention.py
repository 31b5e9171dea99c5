"""``recipe/row_attention.py``: the LLM's attention skips padding (one causal SDPA call per row) and gives the
real positions what transformers' masked SDPA gives them, forward and backward, left or right padding; what it
cannot do (packed rows, a KV cache, eager attention) falls back or is refused."""
from __future__ import annotations

import pytest
import torch

from ivl3_plugin.recipe import row_attention

transformers = pytest.importorskip("transformers")


def tiny_llm(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa")
    return transformers.Qwen2ForCausalLM(cfg).float()


def padded_batch(side):
    torch.manual_seed(1)
    ids = torch.randint(1, 97, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    pads = [4, 0, 1]  # row 1 is the longest; rows 0 and 2 are padded
    for row, n in enumerate(pads):
        if n:
            mask[row, :n] = 0 if side == "left" else mask[row, :n]
            if side == "right":
                mask[row, -n:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def loss_and_grads(model, ids, mask, labels):
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    return out.logits.detach(), out.loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("side", ["left", "right"])
def test_real_positions_match_masked_sdpa_forward_and_backward(side, monkeypatch):
    ids, mask, labels = padded_batch(side)
    model = tiny_llm()
    ref_logits, ref_loss, ref_grads = loss_and_grads(model, ids, mask, labels)
    assert "skips padding" in row_attention.enable(model)
    assert model.config._attn_implementation == row_attention.NAME
    calls, sdpa = [], torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        calls.append((q.shape[0], q.shape[2], attn_mask is None, is_causal))
        return sdpa(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    logits, loss, grads = loss_and_grads(model, ids, mask, labels)
    # one causal call per row and layer, on the row's real tokens only, no mask
    assert calls == [(1, n, True, True) for _ in range(2) for n in (7, 11, 10)]
    real = mask.bool()
    assert torch.allclose(logits[real], ref_logits[real], atol=1e-5)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for name, g in grads.items():
        assert torch.allclose(g, ref_grads[name], atol=1e-6), name


def test_the_mask_function_gives_row_spans_on_the_cpu_and_nothing_without_padding():
    from transformers.masking_utils import causal_mask_function

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    common = dict(batch_size=3, q_length=5, kv_length=5, q_offset=0, kv_offset=0, mask_function=causal_mask_function,
                  allow_is_causal_skip=True, dtype=torch.float32, device=torch.device("cpu"))
    spans = row_attention.row_mask(attention_mask=mask, **common)
    assert spans.device.type == "cpu" and spans.tolist() == [[2, 3], [0, 5], [0, 3]]
    assert row_attention.row_mask(attention_mask=torch.ones(3, 5, dtype=torch.bool), **common) is None
    # a row with a hole is not one span: transformers' own 4-D mask
    holed = mask.clone()
    holed[1, 2] = False
    assert row_attention.row_mask(attention_mask=holed, **common).ndim == 4
    # a cache offset (generation): transformers' own mask too
    assert row_attention.row_mask(attention_mask=mask, **{**common, "q_offset": 2, "q_length": 3}).ndim == 4


def test_packed_rows_fall_back_to_transformers_mask_and_match_sdpa():
    model = tiny_llm()
    torch.manual_seed(3)
    ids = torch.randint(1, 97, (1, 10))
    position_ids = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2]])  # three sequences packed in one row
    ref = model(input_ids=ids, position_ids=position_ids).logits
    row_attention.enable(model)
    out = model(input_ids=ids, position_ids=position_ids).logits
    assert torch.allclose(out, ref, atol=1e-5)


def test_generation_with_a_cache_matches_sdpa():
    ids, mask, _ = padded_batch("left")
    model = tiny_llm().eval()
    ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    row_attention.enable(model)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(out, ref)


def test_only_the_llm_switches_and_eager_is_refused(tiny_model):
    from transformers import InternVLForConditionalGeneration  # the tiny InternVL3 (-hf): ViT + LLM

    model = InternVLForConditionalGeneration.from_pretrained(str(tiny_model), attn_implementation="sdpa")
    vision_before = model.config.vision_config._attn_implementation
    row_attention.enable(model)
    assert model.config.text_config._attn_implementation == row_attention.NAME
    assert model.config.vision_config._attn_implementation == vision_before
    eager = tiny_llm()
    eager.config._attn_implementation = "eager"
    with pytest.raises(ValueError, match="'eager' attention, not 'sdpa'.*skip_padding false"):
        row_attention.enable(eager)


def test_skip_padding_setting_is_checked():
    from ivl3_plugin.recipe.callback_args import field_error

    assert field_error("ivl3_compile", "skip_padding", True) is None
    assert "true or false" in field_error("ivl3_compile", "skip_padding", "yes")


def test_gradient_checkpointing_recomputes_through_it():
    """The recipes checkpoint some or all layers: the recompute in backward must see the same row spans."""
    ids, mask, labels = padded_batch("left")
    model = tiny_llm()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    _, ref_loss, ref_grads = loss_and_grads(model, ids, mask, labels)
    row_attention.enable(model)
    _, loss, grads = loss_and_grads(model, ids, mask, labels)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for name, g in grads.items():
        assert torch.allclose(g, ref_grads[name], atol=1e-6), name


def test_backward_stacks_row_gradients_once_instead_of_summing_full_batch_copies():
    """Each row's gradient reaches query/key/value through one stack: no full-batch add per row (slicing the
    batch per row cost B fills and B - 1 adds of each of them, 5 % of 1B's GPU step at micro-batch 8)."""
    import types

    from torch.profiler import ProfilerActivity, profile

    batch, heads, length, dim = 6, 4, 16, 8
    q = torch.randn(batch, heads, length, dim, requires_grad=True)
    k, v = (torch.randn(batch, 2, length, dim, requires_grad=True) for _ in range(2))
    spans = torch.tensor([[0, length - 1], [0, length], [3, length - 3], [0, length], [1, length - 1], [0, 5]])
    module = types.SimpleNamespace(num_key_value_groups=2, is_causal=True, training=True)
    out, _ = row_attention._attention(module, q, k, v, spans)
    weight = torch.randn(out.shape)  # loss = (out * weight).sum(): its backward copies nothing itself
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        (out * weight).sum().backward()
    full = [list(t.shape) for t in (q, k, v)]
    adds = [e for e in prof.events() if e.name in ("aten::add", "aten::add_") and e.input_shapes
            and list(e.input_shapes[0]) in full]
    assert adds == [], [(e.name, e.input_shapes) for e in adds]
    assert sum(e.name == "aten::stack" for e in prof.events()) == 3
    # nor a full-batch copy of the output's gradient per row (writing rows into a zeroed output in place made
    # autograd clone the whole gradient once per row: 13 ms of 1B's GPU step at micro-batch 8)
    copies = [e for e in prof.events() if e.name in ("aten::copy_", "aten::clone") and e.input_shapes
              and list(e.input_shapes[0]) == list(out.shape)]
    assert copies == [], [(e.name, e.input_shapes) for e in copies]
    # and the gradients are right: padded positions get none, real ones what one causal call per row gives
    for b, (start, n) in enumerate(spans.tolist()):
        real = slice(start, start + n)
        qb, kb, vb = (t.detach()[b:b + 1, :, real].clone().requires_grad_() for t in (q, k, v))
        ref = torch.nn.functional.scaled_dot_product_attention(qb, kb.repeat_interleave(2, 1), vb.repeat_interleave(2, 1),
                                                               is_causal=True)
        (ref.transpose(1, 2) * weight[b:b + 1, real]).sum().backward()
        assert torch.allclose(q.grad[b:b + 1, :, real], qb.grad, atol=1e-5)
        assert torch.allclose(k.grad[b:b + 1, :, real], kb.grad, atol=1e-5)
        assert q.grad[b, :, :start].abs().sum() == 0 and q.grad[b, :, start + n:].abs().sum() == 0
