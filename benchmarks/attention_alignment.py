"""Does cuDNN's attention pay for a sequence length that is not a whole number of tiles, and does padding win it back?

Why: `benchmarks/vit_kernels.py` found the ViT's 1,025-token attention (class token + 1,024 patches) 1.42x
slower than 1,024 tokens for 0.2 % more work.  The LLM's rows are as ragged (a 16-frame sample is 4,435
tokens).  Causal attention can be padded at the end of a row at no cost to the real tokens: no real query
sees a later key, and padded queries' outputs are dropped, so their gradients are zero.  Non-causal (the
ViT) can pad only its queries: padded keys would be attended.

Each shape is timed as it is, and padded to a multiple of ``--multiple`` (the pad and the slice included),
on cuDNN, with the padded result's error against the unpadded one (output and, for causal, gradients):
    python3 benchmarks/attention_alignment.py [--multiple 128] [--backend cudnn|flash|default] [--device cuda]
"""
from __future__ import annotations

import argparse
import contextlib

from vit_kernels import timed  # run as a script, this folder is on sys.path

# (label, batch, query heads, key/value heads, head dim, tokens, causal, timed pass): 1B's and 8B's LLM rows at
# a 16-frame sample, and InternViT-300M over one micro-batch of 4 x 16 frames
SHAPES = [
    ("1B LLM row", 1, 14, 2, 64, 4435, True, "fwd+bwd"),
    ("8B LLM row", 1, 28, 4, 128, 4435, True, "fwd+bwd"),
    ("ViT, 64 frames", 64, 16, 16, 64, 1025, False, "fwd"),
]


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def run_shape(shape, multiple: int, backend, device: str, reps: int) -> list:
    """Rows (variant, ms, relative error of output, relative error of gradients) for one shape."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    label, b, hq, hkv, d, n, causal, what = shape
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    gen = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=gen).to(device, dtype) for h in (hq, hkv, hkv))
    grad = torch.randn(b, hq, n, d, generator=gen).to(device, dtype)
    gqa = {"enable_gqa": True} if hkv != hq else {}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    pad_to = _padded(n, multiple)

    def attend(q, k, v, pad: bool):
        if pad and pad_to > n:
            extra = pad_to - n
            q = F.pad(q, (0, 0, 0, extra))
            if causal:  # later keys are never seen by a real query
                k, v = F.pad(k, (0, 0, 0, extra)), F.pad(v, (0, 0, 0, extra))
        ctx = sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()
        with ctx:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, **gqa)
        return out[:, :, :n]

    results, reference = [], None
    for pad in (False, True):
        leaves = [t.clone().requires_grad_(what != "fwd") for t in (q, k, v)]

        def step():
            if what == "fwd":
                with torch.no_grad():
                    return attend(*leaves, pad)
            out = attend(*leaves, pad)
            out.backward(grad)
            return out

        out = step()
        grads = [t.grad.clone() for t in leaves] if what != "fwd" else []
        ms = timed(step, sync, reps)
        if reference is None:
            reference = (out.detach().float(), [g.float() for g in grads])
            err, gerr = 0.0, 0.0
        else:
            err = float((out.detach().float() - reference[0]).abs().max() / reference[0].abs().max())
            gerr = max((float((g.float() - r).abs().max() / r.abs().max()) for g, r in zip(grads, reference[1])),
                       default=0.0)
        name = f"{label}: {n} tokens" + (f", padded to {pad_to}" + ("" if causal else " (queries only)")
                                          if pad else "")
        results.append((name, what, ms, err, gerr))
    return results


def main(argv=None) -> int:
    import torch
    from torch.nn.attention import SDPBackend

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--multiple", type=int, default=128, help="pad the sequence to a multiple of this")
    ap.add_argument("--backend", choices=["cudnn", "flash", "default"], default="cudnn")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args(argv)
    backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
               "default": None}[args.backend if args.device == "cuda" else "default"]
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}), "
          f"backend {args.backend if args.device == 'cuda' else 'default'}, pad to a multiple of {args.multiple}")
    for shape in SHAPES:
        rows = run_shape(shape, args.multiple, backend, args.device, args.reps)
        base = rows[0][2]
        for name, what, ms, err, gerr in rows:
            print(f"  {name:52s} {what:8s} {ms:8.3f} ms  {base / ms:5.2f}x  "
                  f"max err out {err:.1e}, grads {gerr:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
