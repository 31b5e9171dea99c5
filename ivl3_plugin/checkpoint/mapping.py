"""Tensor names and shapes of both InternVL3 formats, and the checked mapping between them.

Remote (OpenGVLab ``InternVLChatModel``)           -hf (transformers ``InternVLForConditionalGeneration``)
``vision_model.embeddings.class_embedding``         ``vision_tower.embeddings.cls_token``
``vision_model.embeddings.patch_embedding.*``       ``vision_tower.embeddings.patch_embeddings.projection.*``
``vision_model.embeddings.position_embedding``      ``vision_tower.embeddings.position_embeddings``
``vision_model.encoder.layers.N.norm1.*``           ``vision_tower.encoder.layer.N.layernorm_before.*``
``… .norm2.*``                                      ``… .layernorm_after.*``
``… .ls1`` / ``… .ls2``                             ``… .lambda_1`` / ``… .lambda_2``
``… .attn.qkv.{weight,bias}`` (fused, rows q|k|v)   ``… .attention.{q,k,v}_proj.{weight,bias}``
``… .attn.proj.*``                                  ``… .attention.projection_layer.*``
``… .attn.{q,k}_norm.weight`` (InternViT-6B)        ``… .attention.{q,k}_norm.weight``
``… .mlp.fc1.*`` / ``… .mlp.fc2.*``                 ``… .mlp.fc1.*`` / ``… .mlp.fc2.*``
``mlp1.0.*`` / ``mlp1.1.*`` / ``mlp1.3.*``          ``multi_modal_projector.{layer_norm,linear_1,linear_2}.*``
``language_model.model.*``                          ``language_model.model.*``
``language_model.lm_head.weight``                   ``language_model.lm_head.weight``

-hf names are written as transformers 5's ``save_pretrained`` writes them (the layout above); the
in-memory names (``model.language_model.*``, ``model.vision_tower.*``, ``lm_head.*``, …) are read too.
A plan maps every source tensor exactly once and is checked against the tensors the target config
implies (names and shapes), so nothing is dropped or left uninitialised silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Tuple

from .errors import CheckpointError
from .weights import TensorInfo

_LAYER_RENAMES = [  # remote suffix -> hf suffix, within one vision encoder layer
    ("norm1.weight", "layernorm_before.weight"), ("norm1.bias", "layernorm_before.bias"),
    ("norm2.weight", "layernorm_after.weight"), ("norm2.bias", "layernorm_after.bias"),
    ("ls1", "lambda_1"), ("ls2", "lambda_2"),
    ("attn.proj.weight", "attention.projection_layer.weight"), ("attn.proj.bias", "attention.projection_layer.bias"),
    ("attn.q_norm.weight", "attention.q_norm.weight"), ("attn.k_norm.weight", "attention.k_norm.weight"),
    ("mlp.fc1.weight", "mlp.fc1.weight"), ("mlp.fc1.bias", "mlp.fc1.bias"),
    ("mlp.fc2.weight", "mlp.fc2.weight"), ("mlp.fc2.bias", "mlp.fc2.bias"),
]
_FIXED_RENAMES = [  # full names
    ("vision_model.embeddings.class_embedding", "vision_tower.embeddings.cls_token"),
    ("vision_model.embeddings.patch_embedding.weight", "vision_tower.embeddings.patch_embeddings.projection.weight"),
    ("vision_model.embeddings.patch_embedding.bias", "vision_tower.embeddings.patch_embeddings.projection.bias"),
    ("vision_model.embeddings.position_embedding", "vision_tower.embeddings.position_embeddings"),
    ("mlp1.0.weight", "multi_modal_projector.layer_norm.weight"), ("mlp1.0.bias", "multi_modal_projector.layer_norm.bias"),
    ("mlp1.1.weight", "multi_modal_projector.linear_1.weight"), ("mlp1.1.bias", "multi_modal_projector.linear_1.bias"),
    ("mlp1.3.weight", "multi_modal_projector.linear_2.weight"), ("mlp1.3.bias", "multi_modal_projector.linear_2.bias"),
]
_REMOTE_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER = re.compile(r"^vision_tower\.encoder\.layer\.(\d+)\.(.+)$")
_QKV = ("q", "k", "v")
_HF_RUNTIME_PREFIXES = [  # in-memory (transformers >= 4.52) -> saved layout
    ("model.language_model.", "language_model.model."),
    ("model.vision_tower.", "vision_tower."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
    ("lm_head.", "language_model.lm_head."),
]


def canonical_hf_name(name: str) -> str:
    """An -hf tensor name in the layout transformers 5 saves (``language_model.model.*``, ``vision_tower.*``, …)."""
    for runtime, saved in _HF_RUNTIME_PREFIXES:
        if name.startswith(runtime):
            return saved + name[len(runtime):]
    return name


@dataclass(frozen=True)
class Step:
    """Target tensor(s) made from source tensor(s): ``copy`` 1->1, ``split_qkv`` 1->3, ``concat_qkv`` 3->1."""

    kind: str
    sources: Tuple[str, ...]
    targets: Tuple[str, ...]


def _unmapped(name: str, where) -> CheckpointError:
    return CheckpointError(f"source tensor {where(name)} has no place in the target format")


def plan_identity(names: List[str]) -> List[Step]:
    return [Step("copy", (n,), (n,)) for n in names]


def plan_remote_to_hf(names: List[str], where=lambda n: n) -> List[Step]:
    fixed = dict(_FIXED_RENAMES)
    layer = dict(_LAYER_RENAMES)
    steps = []
    for name in names:
        if name.startswith("language_model."):
            steps.append(Step("copy", (name,), (name,)))
        elif name in fixed:
            steps.append(Step("copy", (name,), (fixed[name],)))
        elif (m := _REMOTE_LAYER.match(name)):
            idx, suffix = m.groups()
            prefix = f"vision_tower.encoder.layer.{idx}."
            if suffix in ("attn.qkv.weight", "attn.qkv.bias"):
                param = suffix.rsplit(".", 1)[1]
                steps.append(Step("split_qkv", (name,), tuple(f"{prefix}attention.{p}_proj.{param}" for p in _QKV)))
            elif suffix in layer:
                steps.append(Step("copy", (name,), (prefix + layer[suffix],)))
            else:
                raise _unmapped(name, where)
        else:
            raise _unmapped(name, where)
    return steps


def plan_hf_to_remote(names: List[str], where=lambda n: n) -> List[Step]:
    """``names`` may use the saved or the in-memory -hf layout; steps read the names as given."""
    fixed = {hf: remote for remote, hf in _FIXED_RENAMES}
    layer = {hf: remote for remote, hf in _LAYER_RENAMES}
    seen: Dict[str, str] = {}
    steps = []
    qkv: Dict[Tuple[str, str], Dict[str, str]] = {}
    for name in names:
        canon = canonical_hf_name(name)
        if canon in seen:
            raise CheckpointError(f"source tensors {where(seen[canon])} and {where(name)} are the same tensor "
                                  "under two spellings")
        seen[canon] = name
        if canon.startswith("language_model."):
            steps.append(Step("copy", (name,), (canon,)))
        elif canon in fixed:
            steps.append(Step("copy", (name,), (fixed[canon],)))
        elif (m := _HF_LAYER.match(canon)):
            idx, suffix = m.groups()
            qm = re.match(r"^attention\.([qkv])_proj\.(weight|bias)$", suffix)
            if qm:
                qkv.setdefault((idx, qm.group(2)), {})[qm.group(1)] = name
            elif suffix in layer:
                steps.append(Step("copy", (name,), (f"vision_model.encoder.layers.{idx}.{layer[suffix]}",)))
            else:
                raise _unmapped(name, where)
        else:
            raise _unmapped(name, where)
    for (idx, param), parts in sorted(qkv.items(), key=lambda kv: (int(kv[0][0]), kv[0][1])):
        absent = [p for p in _QKV if p not in parts]
        if absent:
            present = next(iter(parts.values()))
            raise CheckpointError(f"source tensor {where(present)} has no {'/'.join(absent)}_proj.{param} beside it "
                                  "(the remote format fuses q, k and v)")
        steps.append(Step("concat_qkv", tuple(parts[p] for p in _QKV),
                          (f"vision_model.encoder.layers.{idx}.attn.qkv.{param}",)))
    return steps


def target_infos(steps: List[Step], source: Dict[str, TensorInfo], where=lambda n: n) -> Dict[str, TensorInfo]:
    """Shape and dtype of every target tensor, from the source headers; every target made exactly once."""
    out: Dict[str, TensorInfo] = {}
    used = set()
    for step in steps:
        for s in step.sources:
            if s in used:
                raise CheckpointError(f"source tensor {where(s)} would be used twice")
            used.add(s)
        infos = [source[s] for s in step.sources]
        if step.kind == "copy":
            made = [infos[0]]
        elif step.kind == "split_qkv":
            shape = infos[0].shape
            if not shape or shape[0] % 3:
                raise CheckpointError(f"source tensor {where(step.sources[0])} has shape {shape}: its first "
                                      "dimension must be 3 x hidden_size (fused q|k|v)")
            made = [TensorInfo((shape[0] // 3,) + shape[1:], infos[0].dtype)] * 3
        elif step.kind == "concat_qkv":
            shapes = {i.shape for i in infos}
            dtypes = {i.dtype for i in infos}
            if len(shapes) != 1 or len(dtypes) != 1:
                raise CheckpointError(f"source tensors {', '.join(where(s) for s in step.sources)} differ in shape "
                                      f"or dtype ({[i.shape for i in infos]}, {[i.dtype for i in infos]})")
            shape = infos[0].shape
            made = [TensorInfo((3 * shape[0],) + shape[1:], infos[0].dtype)]
        else:  # pragma: no cover - programming error
            raise AssertionError(step.kind)
        for target, info in zip(step.targets, made):
            if target in out:
                raise CheckpointError(f"target tensor {target} would be written twice")
            out[target] = info
    unused = set(source) - used
    if unused:
        raise CheckpointError(f"source tensor {where(sorted(unused)[0])} is not mapped")
    return out


def run_step(step: Step, target: str, read):
    """The tensor ``target`` of ``step``; ``read(name)`` returns a source tensor."""
    import torch

    if step.kind == "copy":
        return read(step.sources[0]).clone()
    if step.kind == "split_qkv":
        fused = read(step.sources[0])
        width = fused.shape[0] // 3
        part = step.targets.index(target)
        return fused[part * width:(part + 1) * width].clone()
    if step.kind == "concat_qkv":
        return torch.cat([read(s) for s in step.sources], dim=0)
    raise AssertionError(step.kind)  # pragma: no cover


# ---- what a config implies ---------------------------------------------------------------------------------
def remote_vision_spec(vision: dict, llm_hidden: int, downsample_ratio: float) -> Dict[str, Tuple[int, ...]]:
    """InternViT + ``mlp1`` tensor names and shapes implied by a (normalised) vision description."""
    d, inter = vision["hidden_size"], vision["intermediate_size"]
    grid = (vision["image_size"] // vision["patch_size"]) ** 2
    p, c = vision["patch_size"], vision["num_channels"]
    spec = {
        "vision_model.embeddings.class_embedding": (1, 1, d),
        "vision_model.embeddings.patch_embedding.weight": (d, c, p, p),
        "vision_model.embeddings.patch_embedding.bias": (d,),
        "vision_model.embeddings.position_embedding": (1, grid + 1, d),
    }
    for i in range(vision["num_hidden_layers"]):
        pre = f"vision_model.encoder.layers.{i}."
        for norm in ("norm1", "norm2"):
            spec[f"{pre}{norm}.weight"] = (d,)
            if vision["norm_type"] == "layer_norm":
                spec[f"{pre}{norm}.bias"] = (d,)
        spec[f"{pre}attn.qkv.weight"] = (3 * d, d)
        if vision["qkv_bias"]:
            spec[f"{pre}attn.qkv.bias"] = (3 * d,)
        if vision["qk_normalization"]:
            spec[f"{pre}attn.q_norm.weight"] = (d,)
            spec[f"{pre}attn.k_norm.weight"] = (d,)
        spec[f"{pre}attn.proj.weight"] = (d, d)
        spec[f"{pre}attn.proj.bias"] = (d,)
        spec[f"{pre}ls1"] = (d,)
        spec[f"{pre}ls2"] = (d,)
        spec[f"{pre}mlp.fc1.weight"] = (inter, d)
        spec[f"{pre}mlp.fc1.bias"] = (inter,)
        spec[f"{pre}mlp.fc2.weight"] = (d, inter)
        spec[f"{pre}mlp.fc2.bias"] = (d,)
    shuffled = d * int(1 / downsample_ratio) ** 2
    spec.update({
        "mlp1.0.weight": (shuffled,), "mlp1.0.bias": (shuffled,),
        "mlp1.1.weight": (llm_hidden, shuffled), "mlp1.1.bias": (llm_hidden,),
        "mlp1.3.weight": (llm_hidden, llm_hidden), "mlp1.3.bias": (llm_hidden,),
    })
    return spec


def _meta_parameters(build) -> Dict[str, Tuple[int, ...]]:
    """Parameter names/shapes of a model built on the meta device (no memory, no weights)."""
    import torch

    with torch.device("meta"):
        model = build()
    out = {name: tuple(p.shape) for name, p in model.named_parameters()}
    out.update({name: tuple(b.shape) for name, b in model.named_buffers()
                if name.split(".")[-1] not in _non_persistent(model, name)})
    return out


def _non_persistent(model, name: str):
    module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    return getattr(module, "_non_persistent_buffers_set", set())


def llm_spec(model_type: str, text: dict) -> Dict[str, Tuple[int, ...]]:
    """``language_model.*`` names/shapes of the native causal LM (tied ``lm_head`` left out)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, **{k: v for k, v in text.items() if k != "dtype"})
    params = _meta_parameters(lambda: AutoModelForCausalLM.from_config(config))
    return {f"language_model.{k}": v for k, v in params.items()}


def remote_spec(desc) -> Dict[str, Tuple[int, ...]]:
    spec = remote_vision_spec(desc.vision, desc.text["hidden_size"], desc.downsample_ratio)
    spec.update(llm_spec(desc.text_model_type, desc.text))
    return spec


def hf_spec(desc) -> Dict[str, Tuple[int, ...]]:
    """Names/shapes of transformers' InternVLForConditionalGeneration for ``desc`` (saved layout)."""
    from transformers import InternVLForConditionalGeneration

    from .configs import hf_config_object

    if desc.image_token_id is None:
        desc = _with_token(desc)
    config = hf_config_object(desc)
    params = _meta_parameters(lambda: InternVLForConditionalGeneration(config))
    return {canonical_hf_name(k): v for k, v in params.items()}


def _with_token(desc):
    import dataclasses

    return dataclasses.replace(desc, image_token_id=0)


def check_against_spec(infos: Dict[str, TensorInfo], spec: Dict[str, Tuple[int, ...]], what: str,
                       where=lambda n: n) -> None:
    """Every tensor of ``spec`` present in ``infos`` with its shape, and nothing else."""
    for name in sorted(spec):
        if name not in infos:
            raise CheckpointError(f"{what}: tensor {name} (shape {spec[name]}) is missing")
        if infos[name].shape != tuple(spec[name]):
            raise CheckpointError(f"{what}: tensor {where(name)} has shape {infos[name].shape}, the config implies "
                                  f"{tuple(spec[name])}")
    extra = sorted(set(infos) - set(spec))
    if extra:
        raise CheckpointError(f"{what}: tensor {where(extra[0])} is not part of the model the config describes")
