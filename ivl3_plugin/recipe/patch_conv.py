"""The ViT's patch embedding as one matmul instead of a convolution.

Why: InternViT cuts each 448 px tile into 14 px patches with a ``Conv2d`` whose stride is its kernel.  The
patches do not overlap, so that convolution is a plain matmul of the flattened patches by the flattened
kernel; but cuDNN runs it as an implicit-GEMM convolution at a few per cent of the GPU's matmul speed
(7.3 ms a step at ~23 TFLOP/s for 1B at micro-batch 8 on an H100, where the matmul takes well under
1 ms).  The weights, their names and the saved checkpoint are unchanged: only ``forward`` is replaced.
``ivl3_compile`` applies it unless its setting ``patch_matmul`` is false.

On by default since the GPU said which kernel is off (``benchmarks/patch_conv_check.py``, one H100, bf16
inputs, float64 reference): the matmul's result equals the correctly rounded one for 99.97 % of the outputs
(mean error 1.41e-3, rounding's own), cuDNN's convolution for 73.8 % (mean error 1.88e-3), at 1.17 vs 7.71 ms.
So the shift seen in 1B full's losses (0.5-1.3 % at steps 4-6, with the aligner trained on these features)
does not come from an error in the matmul: of the two kernels it is the more exact one.
``patch_matmul false`` keeps the convolution.
"""
from __future__ import annotations

from .compile import replace_forwards


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
    names = replace_forwards(model, is_patch_conv, patch_matmul_forward)
    if not names:
        return "patch embedding: no non-overlapping Conv2d found, left as it is"
    return f"patch embedding as one matmul: {', '.join(names)}"
