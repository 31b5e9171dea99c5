"""Regional ``torch.compile``: compile each repeated transformer layer, not the whole model.

Why: a 1B InternVL3 training step is bound by the host, not the GPU.  Each sample launches ~6,000
small kernels (norms, RoPE, SwiGLU, and per LLM linear LoRA's extra matmuls, scale and add) and
the autograd engine walks a node per op; the GPU finishes each in microseconds and then waits.
Compiling a decoder layer fuses its element-wise ops into a few kernels and makes the whole layer
one autograd node.  Every layer of a list is the same code, so the compile cost is that of one
layer of each kind (tens of seconds), not of the whole model, and gradient checkpointing keeps
wrapping each layer from outside, unchanged.

Host-independent (only torch and the model); ``hosts/swift.py`` exposes it to ms-swift as the
``ivl3_compile`` trainer callback.
"""
from __future__ import annotations

CALLBACK_NAME = "ivl3_compile"  # the name recipes and ``--callbacks`` use; hosts/swift_compile.py registers it

# one compiled code object serves every layer; variants (ViT/LLM class, grad mode of a reentrant
# checkpoint's forward vs its recompute, static then dynamic shapes) each take a cache entry
RECOMPILE_LIMIT = 64


def repeated_layers(model) -> list:
    """``[(name, ModuleList)]``: the model's stacks of identical layers (the ViT's, the LLM's).

    A stack is a ``ModuleList`` of two or more modules of one class that hold parameters; stacks
    inside a stack already found are not listed again."""
    import torch

    found = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) < 2:
            continue
        if any(name.startswith(prev + ".") for prev, _ in found):
            continue
        if len({type(m) for m in module}) == 1 and any(True for _ in module[0].parameters()):
            found.append((name, module))
    return found


def compile_layers(model, *, dynamic: bool = True, mode: str | None = None) -> list:
    """Compile, in place, every layer of every repeated stack; returns what was compiled, for the caller's log.

    ``dynamic=True`` because the sequence length changes from sample to sample (the text part);
    compiling for one length first would compile a second time at the next length.  Raises
    ``ValueError`` when the model has no repeated stack, rather than silently training uncompiled."""
    import torch

    stacks = repeated_layers(model)
    if not stacks:
        raise ValueError(f"ivl3 compile: no stack of repeated layers found in {type(model).__name__}")
    cfg = torch._dynamo.config
    for key in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
        if hasattr(cfg, key) and getattr(cfg, key) < RECOMPILE_LIMIT:
            setattr(cfg, key, RECOMPILE_LIMIT)
    done = []
    for name, layers in stacks:
        for layer in layers:
            layer.compile(dynamic=dynamic, mode=mode)
        done.append(f"{name}: {len(layers)} x {type(layers[0]).__name__}")
    return done
