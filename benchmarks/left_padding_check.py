"""Left vs right padding through a Qwen2-style LLM (InternVL3's) on the GPU's SDPA kernels: same loss, finite
and equal gradients.  Why: the SFT recipes pad on the left (answer-only logits, docs/recipes.md "Left padding"),
which gives the first padded positions no key to attend to -- fully masked rows, the case attention kernels have
historically turned into NaN.  The CPU toy test (tests/test_padding_side_e2e.py) covers ms-swift's loop; this
covers the CUDA kernels (default SDPA order, and cuDNN first as `ivl3_compile`'s `attention: cudnn` sets it),
in a few seconds and without ms-swift.

    python3 benchmarks/left_padding_check.py [--device cuda] [--dtype bfloat16]
"""
from __future__ import annotations

import argparse
import json

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def model(device, dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=1024, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=4096)
    cfg._attn_implementation = "sdpa"
    return Qwen2ForCausalLM(cfg).to(device=device, dtype=dtype)


def batch(lengths, answers, side, device):
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(3, 1024, (n,), generator=g) for n in lengths]
    width = max(lengths)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    pos = torch.zeros_like(ids)
    for i, (s, a) in enumerate(zip(seqs, answers)):
        at = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, at], mask[i, at], pos[i, at] = s, 1, torch.arange(len(s))
        labels[i, at][-a:] = s[-a:]
    return {k: v.to(device) for k, v in dict(input_ids=ids, attention_mask=mask, position_ids=pos,
                                             labels=labels).items()}


def run(m, inputs, backends):
    m.zero_grad(set_to_none=True)
    with sdpa_kernel(backends, set_priority=True):
        loss = m(**inputs).loss
        loss.backward()
    grads = torch.cat([p.grad.float().flatten() for p in m.parameters() if p.grad is not None])
    return loss.item(), grads


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    m = model(args.device, dtype)
    lengths, answers = [700, 1500, 300, 1200], [40, 90, 25, 60]
    orders = {"default": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH,
                          SDPBackend.CUDNN_ATTENTION],
              "cudnn first": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION,
                              SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]}
    rows, ok = [], True
    for name, order in orders.items():
        right_loss, right_g = run(m, batch(lengths, answers, "right", args.device), order)
        left_loss, left_g = run(m, batch(lengths, answers, "left", args.device), order)
        finite = bool(torch.isfinite(left_g).all() and torch.isfinite(right_g).all())
        rel_loss = abs(left_loss - right_loss) / abs(right_loss)
        rel_grad = ((left_g - right_g).norm() / right_g.norm()).item()
        good = finite and rel_loss < 2e-2 and rel_grad < 5e-2
        ok &= good
        rows.append(dict(order=name, right_loss=right_loss, left_loss=left_loss, rel_loss=rel_loss,
                         rel_grad=rel_grad, finite=finite, ok=good))
        print(f"{name:12} loss right {right_loss:.5f} left {left_loss:.5f} (rel {rel_loss:.1e}); grads finite "
              f"{finite}, rel diff {rel_grad:.1e} -> {'OK' if good else 'DIFFERENT'}", flush=True)
    print(json.dumps({"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                      "torch": torch.__version__, "dtype": args.dtype, "rows": rows}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
