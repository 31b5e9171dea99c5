"""The ViT's patch embedding as one matmul instead of a convolution.

Why: InternViT cuts each 448 px tile into 14 px patches with a ``Conv2d`` whose stride is its kernel.  The
patches do not overlap, so that convolution is a plain matmul of the flattened patches by the flattened
kernel; but cuDNN runs it as an implicit-GEMM convolution at a few per cent of the GPU's matmul speed
(7.3 ms a step at ~23 TFLOP/s for 1B at micro-batch 8 on an H100, where the matmul takes well under
1 ms).  The weights, their names and the saved checkpoint are unchanged: only ``forward`` is replaced.
``ivl3_compile`` applies it when its setting ``patch_matmul`` is true.

Opt-in, not the default: on one H100 it made 1B full 2.2 % faster (16.63 vs 16.27 samples/s, same run), and
1B LoRA's losses stayed within 0.01 % of an earlier run's, but 1B full's losses at steps 4-6 came out
0.5-1.3 % below those of five runs with the convolution, which agree with each other within 0.05 %.  The
CPU gives the convolution's values (tests/test_patch_conv.py); ``benchmarks/patch_conv_check.py`` measures
both kernels' bf16 error on the GPU, which has not been run yet.
"""
from __future__ import annotations

import types


def is_patch_conv(module) -> bool:
    """A plain ``Conv2d`` whose windows tile the image without overlap or padding (exactly a matmul)."""
    import torch

    return (type(module) is torch.nn.Conv2d and module.kernel_size == module.stride
            and module.padding in ((0, 0), "valid") and module.dilation == (1, 1) and module.groups == 1)


def patch_matmul_forward(self, x):
    """``Conv2d.forward`` for non-overlapping patches: (N, C, H, W) -> (N, C_out, H // k, W // k).

    The result is the convolution's, in channels-last memory, so the ViT's usual ``flatten(2).transpose(1, 2)``
    to (N, patches, C_out) needs no further copy.  Rows and columns past the last whole patch are dropped,
    as the convolution drops them."""
    import torch.nn.functional as F

    kh, kw = self.kernel_size
    n, c, h, w = x.shape
    rows, cols = h // kh, w // kw
    x = x[:, :, :rows * kh, :cols * kw]
    patches = x.reshape(n, c, rows, kh, cols, kw).permute(0, 2, 4, 1, 3, 5).reshape(n * rows * cols, c * kh * kw)
    out = F.linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)
    return out.reshape(n, rows, cols, self.out_channels).permute(0, 3, 1, 2)


def patch_convs_as_matmul(model) -> str:
    """Replace the forward of every patch convolution in ``model``; returns a line for the log."""
    names = []
    for name, module in model.named_modules():
        if is_patch_conv(module) and getattr(module.forward, "__func__", None) is not patch_matmul_forward:
            module.forward = types.MethodType(patch_matmul_forward, module)
            names.append(name)
    if not names:
        return "patch embedding: no non-overlapping Conv2d found, left as it is"
    return f"patch embedding as one matmul: {', '.join(names)}"
