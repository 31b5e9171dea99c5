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

CALLBACK_NAME = "ivl3_compile"  # the name recipes and ``--callbacks`` use; hosts/swift/install.py registers it
# partial gradient checkpointing: only the LLM's first k layers recompute their forward in backward
RECOMPUTE_CALLBACK = "ivl3_recompute"
RECOMPUTE_FIELDS = {"layers": "how many of the LLM's layers, counted from the first, stay checkpointed"}
ATTENTION_CHOICES = ("default", "cudnn", "flash", "efficient")
COMPILE_FIELDS = {"attention": "which SDPA backend to try first: " + ", ".join(ATTENTION_CHOICES),
                  "skip_padding": "the LLM's attention skips padded positions (one causal SDPA call per row; "
                                  "default true, needs --attn_impl sdpa): recipe/row_attention.py",
                  "patch_matmul": "the ViT's patch embedding runs as one matmul, not a cuDNN convolution (default "
                                  "true: recipe/patch_conv.py)",
                  "gelu_epilogue": "the frozen ViT's MLP adds its bias and GELU inside the first matmul (cuBLASLt's "
                                   "epilogue; default true: recipe/vit_mlp.py)",
                  "host_ahead": "ms-swift's loop reads what it needs to know of a batch from its CPU copy, so the "
                                "host never waits for the GPU within a micro-batch (default true: "
                                "hosts/swift/host_ahead.py)"}

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


def replace_forwards(model, matches, forward) -> list:
    """Give every module of ``model`` that ``matches`` the plain function ``forward`` as its ``forward``
    (weights, names and checkpoint unchanged); returns the names of the modules changed.  A module that
    already has it is left alone, so a second call changes nothing."""
    import types

    names = []
    for name, module in model.named_modules():
        if matches(module) and getattr(module.forward, "__func__", None) is not forward:
            module.forward = types.MethodType(forward, module)
            names.append(name)
    return names


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


def llm_layers(model):
    """The language model's stack of decoder layers: the repeated stack under ``language_model`` (InternVL3),
    else the longest repeated stack whose layers take gradient checkpointing."""
    stacks = repeated_layers(model)
    for name, layers in stacks:
        if "language_model" in name.split("."):
            return name, layers
    ckpt = [(n, l) for n, l in stacks if hasattr(l[0], "gradient_checkpointing")]
    if not ckpt:
        raise ValueError(f"ivl3 recompute: no stack of decoder layers found in {type(model).__name__}")
    return max(ckpt, key=lambda item: len(item[1]))


def checkpoint_first(model, layers: int) -> str:
    """Keep gradient checkpointing on the LLM's first ``layers`` layers only; the others store their activations.

    Checkpointing the first layers (not the last) keeps the peak lowest: backward runs the unchecked later
    layers first and frees their activations before any checkpointed layer is recomputed.  Needs
    checkpointing already enabled (transformers' ``GradientCheckpointingLayer`` flag, or ms-swift's
    dynamic wrapper: both read ``layer.gradient_checkpointing`` at every call).  Returns a line for the log."""
    name, stack = llm_layers(model)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise ValueError(f"{RECOMPUTE_CALLBACK}: 'layers' must be a whole number >= 0, got {layers!r}")
    if layers and not all(getattr(layer, "gradient_checkpointing", False) for layer in stack):
        raise ValueError(f"{RECOMPUTE_CALLBACK}: gradient checkpointing is off in {name}; set "
                         "gradient_checkpointing true (the callback then keeps it on the first layers only)")
    keep = min(layers, len(stack))
    for i, layer in enumerate(stack):
        if getattr(layer, "gradient_checkpointing", False) and i >= keep:
            layer.gradient_checkpointing = False
    return f"{name}: checkpointing on the first {keep} of {len(stack)} layers"


def prefer_attention(backend: str) -> str:
    """Try SDPA backend ``backend`` first from now on (the others stay as fallbacks, in torch's order).

    The compiled layers pick their attention kernel when they are traced, so this must run before the
    first step.  ``default`` leaves torch's order.  Returns a line for the log."""
    if backend not in ATTENTION_CHOICES:
        raise ValueError(f"{CALLBACK_NAME}: 'attention' must be one of {', '.join(ATTENTION_CHOICES)}, got {backend!r}")
    if backend == "default":
        return "attention: torch's default SDPA order"
    import torch
    from torch.nn.attention import SDPBackend

    first = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend]
    get, set_ = (getattr(torch._C, "_get_sdp_priority_order", None), getattr(torch._C, "_set_sdp_priority_order", None))
    if get is None or set_ is None:  # torch before 2.6 has no priority order: leave its own
        return f"attention: this torch cannot reorder SDPA backends; {backend} not preferred"
    set_([int(first)] + [b for b in get() if b != int(first)])
    return f"attention: SDPA tries {backend} first"
