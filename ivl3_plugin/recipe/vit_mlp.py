"""The frozen ViT's MLP with its bias and GELU done inside the first matmul (cuBLASLt's epilogue).

Why: the recipes freeze the ViT, so it runs forward only, on every frame of every sample: for 1B at
micro-batch 8 x 16 frames that is 131,200 tokens through a 1,024 -> 4,096 -> 1,024 MLP in each of 24 layers.
Compiled, the GELU is a separate Triton kernel that reads and writes the 4,096-wide activation (20 ms a step
on an H100). cuBLASLt can add the bias and apply GELU while the matmul's fp32 result is still in registers
(``torch._addmm_activation``): on an H100 the MLP ran 1.16x faster (``benchmarks/vit_kernels.py``).

The epilogue's GELU is the tanh form and InternViT's is the exact (erf) one, but their difference is far
below bf16's rounding, and the epilogue rounds once where eager rounds twice (after the matmul, after the
GELU): against a float64 exact-GELU reference the epilogue's error was 2.3e-3, eager bf16's 3.2e-3.

Only for calls that need no gradient (a frozen MLP fed by a frozen model): anything else runs the module's
own forward, so training a ViT (full or LoRA) is untouched.  The weights and the checkpoint are unchanged.
The op is registered as a torch custom op, so ``torch.compile`` keeps the cuBLASLt call instead of
splitting it back into a matmul and a Triton GELU.
"""
from __future__ import annotations

from functools import lru_cache

from .compile import replace_forwards


@lru_cache(maxsize=None)
def _linear_gelu_op():
    """``ivl3::linear_gelu(x, weight, bias)``: ``gelu(x @ weight.T + bias)`` in one cuBLASLt call."""
    import torch

    @torch.library.custom_op("ivl3::linear_gelu", mutates_args=(),
                             schema="(Tensor x, Tensor weight, Tensor bias) -> Tensor")
    def linear_gelu(x, weight, bias):
        flat = x.reshape(-1, x.shape[-1])
        out = torch._addmm_activation(bias, flat, weight.t(), use_gelu=True)
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @linear_gelu.register_fake
    def _(x, weight, bias):
        return x.new_empty(*x.shape[:-1], weight.shape[0])

    return linear_gelu


def _is_exact_gelu(act) -> bool:
    import torch

    if isinstance(act, torch.nn.GELU):
        return act.approximate == "none"
    try:
        from transformers.activations import GELUActivation
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return type(act) is GELUActivation and getattr(act, "act", None) is torch.nn.functional.gelu


def is_gelu_mlp(module) -> bool:
    """A ViT MLP ``fc2(gelu(fc1(x)))``: InternViT's (remote code: ``act``; ``-hf``: ``activation_fn``)."""
    import torch

    fc1, fc2 = getattr(module, "fc1", None), getattr(module, "fc2", None)
    act = getattr(module, "act", None) or getattr(module, "activation_fn", None)
    return (type(fc1) is torch.nn.Linear and type(fc2) is torch.nn.Linear and fc1.bias is not None
            and _is_exact_gelu(act))


def gelu_epilogue_forward(self, hidden_states):
    """The MLP's forward: the epilogue when no gradient is needed, the module's own forward otherwise."""
    import torch

    fc1 = self.fc1
    if torch.is_grad_enabled() and (hidden_states.requires_grad or fc1.weight.requires_grad
                                    or fc1.bias.requires_grad):
        return type(self).forward(self, hidden_states)
    return self.fc2(_linear_gelu_op()(hidden_states, fc1.weight, fc1.bias))


def fuse_vit_mlp_gelu(model) -> str:
    """Give every InternViT MLP in ``model`` the epilogue forward; returns a line for the log."""
    count = len(replace_forwards(model, is_gelu_mlp, gelu_epilogue_forward))
    if not count:
        return "ViT MLP: no fc1-GELU-fc2 MLP found, left as it is"
    return f"ViT MLP: bias + GELU in the matmul's epilogue when frozen ({count} MLPs)"
