"""The ViT's patch embedding on the GPU: cuDNN's convolution vs ``recipe/patch_conv.py``'s matmul, in bf16.

Prints each one's error against a float64 reference on InternViT's shapes (micro-batch 8 x 16 frames of
448 px, 14 px patches, 1,024 channels) and their times, side by side:
    python3 benchmarks/patch_conv_check.py [--frames 128] [--channels 1024] [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from ivl3_plugin.recipe.patch_conv import patch_convs_as_matmul

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = args.device
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    conv = torch.nn.Conv2d(3, args.channels, 14, stride=14).to(dev)
    torch.nn.init.trunc_normal_(conv.weight, std=0.02)
    x = torch.randn(args.frames, 3, 448, 448, device=dev).clamp(-2.2, 2.7)  # normalised pixels' range
    conv = conv.bfloat16()
    xb = x.bfloat16()  # the reference takes the same bf16 inputs: only the kernels' own error is compared
    ref = torch.nn.functional.conv2d(xb.double(), conv.weight.double(), conv.bias.double(), stride=14)
    matmul = torch.nn.Conv2d(3, args.channels, 14, stride=14).to(dev).bfloat16()
    matmul.load_state_dict(conv.state_dict())
    patch_convs_as_matmul(torch.nn.ModuleDict({"patch": matmul}))
    for mod in (conv, matmul):
        mod.requires_grad_(False)  # a frozen ViT, as the recipes train it
    rounded = ref.bfloat16().double()  # the best a bf16 result can be
    for name, mod in (("cuDNN convolution", conv), ("matmul (patch_conv)", matmul)):
        with torch.no_grad():
            out = mod(xb)
            for _ in range(3):
                mod(xb)
            sync()
            t0 = time.perf_counter()
            for _ in range(10):
                mod(xb)
            sync()
            ms = (time.perf_counter() - t0) * 100
        err = (out.double() - ref).abs()
        scale = ref.abs().mean()
        print(f"{name:22s} {ms:7.3f} ms   mean |err| / mean |ref| {err.mean() / scale:.2e}"
              f"   max |err| / mean |ref| {err.max() / scale:.2e}   equal to rounded reference "
              f"{(out.double() == rounded).float().mean():.3%}")
    print(f"rounding alone: mean |err| / mean |ref| {((rounded - ref).abs().mean() / scale):.2e}")
    with torch.no_grad():
        diff = (conv(xb) - matmul(xb)).abs().max().double()
    print(f"conv vs matmul: max |diff| / mean |ref| {diff / scale:.2e}")


if __name__ == "__main__":
    main()
