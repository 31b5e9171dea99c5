"""Model configs of both InternVL3 formats, through one normalised description.

``describe_remote`` / ``describe_hf`` read a ``config.json`` dict into a :class:`ModelDesc`;
``render_remote`` / ``render_hf`` write one.  Both renderings carry the fields transformers-4.x-era
loaders (LMDeploy, vLLM, the official remote code) read next to what transformers 5 writes:

* ``rope_theta`` (and ``rope_scaling`` when the RoPE type is not ``default``) in ``llm_config`` /
  ``text_config``; transformers 5 alone writes only ``rope_parameters``, and a 4.x reader then falls
  back to ``rope_theta = 10000`` (Qwen2.5 uses 1,000,000).
* ``torch_dtype`` beside transformers 5's ``dtype``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from ..shared.layout import IMAGENET_MEAN as _MEAN, IMAGENET_STD as _STD, TILE_SIZE
from .errors import CheckpointError

IMAGENET_MEAN = list(_MEAN)  # lists: what the processor configs hold in JSON
IMAGENET_STD = list(_STD)
INTERNVL3_SYSTEM = ("你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
                    "多模态大语言模型。")

REMOTE_AUTO_MAP = {
    "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
    "AutoModel": "modeling_internvl_chat.InternVLChatModel",
    "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
}
#: What the released checkpoints ship as ``preprocessor_config.json`` (the remote code does its own
#: pre-processing; some serving stacks read this file).
REMOTE_PREPROCESSOR = {
    "crop_size": TILE_SIZE, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD,
    "resample": 3, "size": TILE_SIZE,
}
# Fields of a remote config.json that say how the released code pre-processes images; kept from the
# source (or the --code-from folder) when converting to the remote format.
REMOTE_PREPROCESSING_DEFAULTS = {
    "template": "internvl2_5", "dynamic_image_size": True, "use_thumbnail": True, "min_dynamic_patch": 1,
    "max_dynamic_patch": 12, "pad2square": False, "use_backbone_lora": 0, "use_llm_lora": 0,
}
# Keys of a language-model config that describe a run, not the model.
_RUN_KEYS = ("_name_or_path", "attn_implementation", "_attn_implementation", "_attn_implementation_autoset",
             "auto_map", "architectures", "transformers_version", "use_bfloat16", "use_flash_attn",
             "_commit_hash",
             # generic PretrainedConfig attributes transformers 5 does not save for a language model either
             "output_hidden_states", "output_attentions", "return_dict", "chunk_size_feed_forward",
             "is_encoder_decoder", "id2label", "label2id", "problem_type", "torchscript", "pruned_heads",
             "tf_legacy_loss", "use_return_dict")
_VISION_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                    "image_size", "qkv_bias", "qk_normalization", "norm_type")
_NO_NATIVE_LLM = {
    "internlm3": "InternLM3 (InternVL3-9B)", "internlm2": "InternLM2 (InternVL2.5-8B/20B/26B)",
    "InternLM3ForCausalLM": "InternLM3 (InternVL3-9B)", "InternLM2ForCausalLM": "InternLM2 (InternVL2.5)",
}


@dataclass
class ModelDesc:
    """One InternVL model, independent of the file format."""

    vision: Dict[str, Any]          # InternViT: hidden_size, qkv_bias, qk_normalization, norm_type, ...
    text: Dict[str, Any]            # the language model's config as transformers 5 serialises it
    text_model_type: str
    downsample_ratio: float
    select_layer: int
    image_size: int
    dtype: Optional[str]
    tie_word_embeddings: bool
    image_token_id: Optional[int] = None
    image_seq_length: Optional[int] = None
    remote_extras: Dict[str, Any] = field(default_factory=dict)  # template, dynamic_image_size, ...

    @property
    def tokens_per_tile(self) -> int:
        return int((self.image_size // self.vision["patch_size"]) ** 2 * self.downsample_ratio ** 2)

    @property
    def vision_style(self) -> str:
        v = self.vision
        if v["qk_normalization"] or v["norm_type"] == "rms_norm":
            return f"InternViT-6B style (qk-norm={v['qk_normalization']}, {v['norm_type']}, qkv_bias={v['qkv_bias']})"
        return f"InternViT-300M style ({v['norm_type']}, qkv_bias={v['qkv_bias']})"


def _square(value, name, where) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise CheckpointError(f"{where}: {name} {list(value)} is not square (InternVL tiles are square)")
        return int(value[0])
    return int(value)


def _refuse_llm(model_type: Optional[str], arch: Optional[str], where: str) -> None:
    for key in (model_type, arch):
        if key in _NO_NATIVE_LLM:
            raise CheckpointError(
                f"{where}: the language model is {_NO_NATIVE_LLM[key]} ({arch or model_type}), which has no "
                "transformers-native implementation, so this checkpoint has no -hf equivalent; keep it in the "
                "remote-code format (InternVL3-9B is not supported by ivl3 checkpoint)")


def normalise_text_config(text: Dict[str, Any], where: str) -> tuple:
    """(model_type, transformers-5 dict) of a language-model config (remote ``llm_config`` or hf ``text_config``)."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    text = dict(text)
    arch = (text.get("architectures") or [None])[0]
    model_type = text.get("model_type")
    _refuse_llm(model_type, arch, where)
    if model_type is None:
        if arch is None:
            raise CheckpointError(f"{where}: the language-model config names neither model_type nor architectures")
        found = [t for t, cls in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items() if cls == arch]
        if not found:
            raise CheckpointError(f"{where}: language model {arch} is not a transformers-native causal LM")
        model_type = found[0]
    if model_type not in CONFIG_MAPPING or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise CheckpointError(f"{where}: language model type {model_type!r} is not a transformers-native causal LM")
    if "torch_dtype" in text and "dtype" not in text:
        text["dtype"] = text["torch_dtype"]
    for key in _RUN_KEYS + ("model_type", "torch_dtype"):
        text.pop(key, None)
    try:
        config = AutoConfig.for_model(model_type, **text)
    except Exception as exc:  # transformers validates field types strictly
        raise CheckpointError(f"{where}: invalid language-model config ({exc})") from None
    out = config.to_dict()
    for key in _RUN_KEYS + ("model_type",):
        out.pop(key, None)
    return model_type, out


def causal_lm_class(model_type: str) -> str:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type]


def legacy_text_fields(text: Dict[str, Any]) -> Dict[str, Any]:
    """``text`` plus ``rope_theta`` / ``rope_scaling`` / ``torch_dtype`` for transformers-4.x-era readers.

    Consistent both ways: transformers 5 rebuilds ``rope_parameters`` from ``rope_scaling`` +
    ``rope_theta`` when both are present, so every reader sees the same RoPE.
    """
    text = dict(text)
    params = dict(text.get("rope_parameters") or {})
    if params and any(isinstance(v, dict) for v in params.values()):
        raise CheckpointError("per-layer-type RoPE parameters cannot be written for transformers 4.x readers")
    theta = params.get("rope_theta", text.get("rope_theta"))
    if theta is not None:
        text["rope_theta"] = theta
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
        scaling["rope_type"] = rope_type
        scaling["type"] = rope_type
        text["rope_scaling"] = scaling
    else:
        text["rope_scaling"] = None
    if text.get("dtype") is not None:
        text["torch_dtype"] = text["dtype"]
    return text


# ---- remote --------------------------------------------------------------------------------------------
def describe_remote(config: Dict[str, Any], where: str) -> ModelDesc:
    vision = dict(config.get("vision_config") or {})
    llm = config.get("llm_config")
    if not vision or not llm:
        raise CheckpointError(f"{where}: a remote InternVL config needs vision_config and llm_config")
    missing = [k for k in _VISION_REQUIRED if k not in vision]
    if missing:
        raise CheckpointError(f"{where}: vision_config lacks {', '.join(missing)} (InternViT-300M: qkv_bias true, "
                              "qk_normalization false, norm_type layer_norm; InternViT-6B: false, true, rms_norm)")
    ps_version = config.get("ps_version", "v1")
    if ps_version != "v2":
        raise CheckpointError(f"{where}: ps_version {ps_version!r}: only InternVL2.5/3's pixel shuffle 'v2' has a "
                              "transformers-native (-hf) equivalent")
    model_type, text = normalise_text_config(llm, f"{where} llm_config")
    patch = _square(vision["patch_size"], "vision_config.patch_size", where)
    vit_size = _square(vision["image_size"], "vision_config.image_size", where)
    image_size = _square(config.get("force_image_size") or vit_size, "force_image_size", where)
    if image_size != vit_size:
        raise CheckpointError(f"{where}: force_image_size {image_size} differs from vision_config.image_size "
                              f"{vit_size}; the -hf layout has one image size")
    v = dict(
        hidden_size=int(vision["hidden_size"]), num_hidden_layers=int(vision["num_hidden_layers"]),
        num_attention_heads=int(vision["num_attention_heads"]), intermediate_size=int(vision["intermediate_size"]),
        hidden_act=vision.get("hidden_act", "gelu"), qkv_bias=bool(vision["qkv_bias"]),
        qk_normalization=bool(vision["qk_normalization"]), norm_type=vision["norm_type"],
        layer_norm_eps=float(vision.get("layer_norm_eps", 1e-6)), image_size=vit_size, patch_size=patch,
        num_channels=int(vision.get("num_channels", 3)), attention_dropout=float(vision.get("attention_dropout", 0.0)),
        dropout=float(vision.get("dropout", 0.0)), drop_path_rate=float(vision.get("drop_path_rate", 0.0)),
        initializer_range=float(vision.get("initializer_range", 0.02)),
        initializer_factor=float(vision.get("initializer_factor", 0.1)),
        use_flash_attn=bool(vision.get("use_flash_attn", True)),
    )
    if v["norm_type"] not in ("layer_norm", "rms_norm"):
        raise CheckpointError(f"{where}: vision_config.norm_type {v['norm_type']!r} (layer_norm or rms_norm)")
    tie = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    text["tie_word_embeddings"] = tie
    extras = {k: config[k] for k in REMOTE_PREPROCESSING_DEFAULTS if k in config}
    for key in ("system_message", "auto_map"):
        if key in config:
            extras[key] = config[key]
    dtype = config.get("torch_dtype") or config.get("dtype") or text.get("dtype")
    return ModelDesc(vision=v, text=text, text_model_type=model_type,
                     downsample_ratio=float(config.get("downsample_ratio", 0.5)),
                     select_layer=int(config.get("select_layer", -1)), image_size=image_size, dtype=dtype,
                     tie_word_embeddings=tie, remote_extras=extras)


def render_remote(desc: ModelDesc, code_config: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A remote ``config.json``; pre-processing fields and ``auto_map`` come from ``code_config`` when given."""
    code_config = code_config or {}
    v = desc.vision
    code_vision = code_config.get("vision_config") or {}
    vision = dict(
        architectures=["InternVisionModel"], model_type="intern_vit_6b", hidden_size=v["hidden_size"],
        num_hidden_layers=v["num_hidden_layers"], num_attention_heads=v["num_attention_heads"],
        intermediate_size=v["intermediate_size"], hidden_act=v["hidden_act"], qkv_bias=v["qkv_bias"],
        qk_normalization=v["qk_normalization"], norm_type=v["norm_type"], layer_norm_eps=v["layer_norm_eps"],
        image_size=v["image_size"], patch_size=v["patch_size"], num_channels=v["num_channels"],
        attention_dropout=v["attention_dropout"], dropout=v["dropout"],
        drop_path_rate=float(code_vision.get("drop_path_rate", v.get("drop_path_rate", 0.0))),
        initializer_range=v["initializer_range"], initializer_factor=v["initializer_factor"],
        use_flash_attn=bool(code_vision.get("use_flash_attn", v.get("use_flash_attn", True))),
    )
    llm = dict(desc.text)
    llm["architectures"] = [causal_lm_class(desc.text_model_type)]
    llm["model_type"] = desc.text_model_type
    llm["tie_word_embeddings"] = desc.tie_word_embeddings
    if desc.dtype:
        llm["dtype"] = desc.dtype
        vision["torch_dtype"] = desc.dtype
    llm = legacy_text_fields(llm)
    config: Dict[str, Any] = {
        "architectures": ["InternVLChatModel"],
        "auto_map": copy.deepcopy(code_config.get("auto_map") or desc.remote_extras.get("auto_map") or REMOTE_AUTO_MAP),
        "model_type": "internvl_chat",
        "vision_config": vision,
        "llm_config": llm,
        "downsample_ratio": desc.downsample_ratio,
        "force_image_size": desc.image_size,
        "select_layer": desc.select_layer,
        "ps_version": "v2",
        "hidden_size": desc.text["hidden_size"],
        "tie_word_embeddings": desc.tie_word_embeddings,
    }
    for key, default in REMOTE_PREPROCESSING_DEFAULTS.items():
        config[key] = code_config.get(key, desc.remote_extras.get(key, default))
    if "system_message" in code_config or "system_message" in desc.remote_extras:
        config["system_message"] = code_config.get("system_message", desc.remote_extras.get("system_message"))
    if desc.dtype:
        config["torch_dtype"] = desc.dtype
    return config


# ---- transformers-native (-hf) ----------------------------------------------------------------------------
def describe_hf(config: Dict[str, Any], where: str) -> ModelDesc:
    vision = dict(config.get("vision_config") or {})
    text = config.get("text_config")
    if not text:
        raise CheckpointError(f"{where}: an -hf InternVL config needs text_config")
    if config.get("vision_feature_select_strategy", "default") != "default":
        raise CheckpointError(f"{where}: vision_feature_select_strategy "
                              f"{config['vision_feature_select_strategy']!r} (the remote format always drops the "
                              "class token, i.e. 'default')")
    if config.get("projector_hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{where}: projector_hidden_act {config['projector_hidden_act']!r} (the remote mlp1 "
                              "uses GELU)")
    for key, want in (("use_mean_pooling", True), ("use_mask_token", False), ("use_absolute_position_embeddings", True)):
        if key in vision and bool(vision[key]) != want:
            raise CheckpointError(f"{where}: vision_config.{key} is {vision[key]} (InternViT has {want})")
    model_type, text = normalise_text_config(text, f"{where} text_config")
    patch = _square(vision.get("patch_size", 14), "vision_config.patch_size", where)
    image_size = _square(vision.get("image_size", TILE_SIZE), "vision_config.image_size", where)
    layer_feature = config.get("vision_feature_layer", -1)
    if isinstance(layer_feature, (list, tuple)):
        raise CheckpointError(f"{where}: vision_feature_layer {layer_feature} (several layers) has no remote equivalent")
    v = dict(
        hidden_size=int(vision.get("hidden_size", 1024)), num_hidden_layers=int(vision.get("num_hidden_layers", 24)),
        num_attention_heads=int(vision.get("num_attention_heads", 16)),
        intermediate_size=int(vision.get("intermediate_size", 4096)), hidden_act=vision.get("hidden_act", "gelu"),
        qkv_bias=bool(vision.get("attention_bias", False)), qk_normalization=bool(vision.get("use_qk_norm", False)),
        norm_type=vision.get("norm_type", "layer_norm"), layer_norm_eps=float(vision.get("layer_norm_eps", 1e-6)),
        image_size=image_size, patch_size=patch, num_channels=int(vision.get("num_channels", 3)),
        attention_dropout=float(vision.get("attention_dropout", 0.0)),
        dropout=float(vision.get("hidden_dropout_prob", 0.0)), drop_path_rate=0.0,
        initializer_range=float(vision.get("initializer_range", 0.02)),
        initializer_factor=float(vision.get("layer_scale_init_value", 0.1)), use_flash_attn=True,
    )
    tie = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", True)))
    if bool(text.get("tie_word_embeddings", tie)) != tie:
        raise CheckpointError(f"{where}: tie_word_embeddings is {tie} at the top level but "
                              f"{text.get('tie_word_embeddings')} in text_config")
    text["tie_word_embeddings"] = tie
    desc = ModelDesc(vision=v, text=text, text_model_type=model_type,
                     downsample_ratio=float(config.get("downsample_ratio", 0.5)), select_layer=int(layer_feature),
                     image_size=image_size, dtype=config.get("dtype") or config.get("torch_dtype"),
                     tie_word_embeddings=tie, image_token_id=config.get("image_token_id"),
                     image_seq_length=config.get("image_seq_length"))
    if desc.image_seq_length is not None and int(desc.image_seq_length) != desc.tokens_per_tile:
        raise CheckpointError(f"{where}: image_seq_length {desc.image_seq_length} but image_size {image_size}, "
                              f"patch {patch} and downsample_ratio {desc.downsample_ratio} give {desc.tokens_per_tile}")
    return desc


def hf_config_object(desc: ModelDesc):
    """The transformers ``InternVLConfig`` of ``desc`` (needs ``desc.image_token_id``)."""
    from transformers import InternVLConfig

    v = desc.vision
    vision = dict(
        hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
        hidden_act=v["hidden_act"], attention_bias=v["qkv_bias"], use_qk_norm=v["qk_normalization"],
        norm_type=v["norm_type"], layer_norm_eps=v["layer_norm_eps"], image_size=[v["image_size"]] * 2,
        patch_size=[v["patch_size"]] * 2, num_channels=v["num_channels"], attention_dropout=v["attention_dropout"],
        hidden_dropout_prob=v["dropout"], projection_dropout=v["dropout"], initializer_range=v["initializer_range"],
        layer_scale_init_value=v["initializer_factor"], use_mask_token=False, use_absolute_position_embeddings=True,
        use_mean_pooling=True,
    )
    text = dict(desc.text)
    text["model_type"] = desc.text_model_type
    text.pop("dtype", None)
    config = InternVLConfig(
        vision_config=vision, text_config=text, image_token_id=int(desc.image_token_id),
        image_seq_length=desc.tokens_per_tile, downsample_ratio=desc.downsample_ratio, projector_hidden_act="gelu",
        vision_feature_layer=desc.select_layer, vision_feature_select_strategy="default",
        tie_word_embeddings=desc.tie_word_embeddings,
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    if desc.dtype:
        config.dtype = desc.dtype
        config.text_config.dtype = desc.dtype
        config.vision_config.dtype = desc.dtype
    return config


def render_hf(desc: ModelDesc, scratch: Path) -> Dict[str, Any]:
    """The -hf ``config.json`` exactly as transformers 5 saves it, plus the 4.x-era fields."""
    config = hf_config_object(desc)
    scratch.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(scratch)
    data = json.loads((scratch / "config.json").read_text())
    (scratch / "config.json").unlink()
    data["text_config"] = legacy_text_fields(data["text_config"])
    if data.get("dtype") is not None:
        data["torch_dtype"] = data["dtype"]
    return data
