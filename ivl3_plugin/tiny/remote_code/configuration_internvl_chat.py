# Written for ivl3-plugin's tiny test fixture (Apache-2.0); a from-scratch implementation of the
# documented config layout of OpenGVLab's remote-code InternVL checkpoints (``internvl_chat``).
"""Config of ``InternVLChatModel``: a ``vision_config`` (InternViT) and an ``llm_config`` (a causal LM)."""
from transformers import AutoConfig
from transformers.configuration_utils import PretrainedConfig

from .configuration_intern_vit import InternVisionConfig


def _llm_config_from_dict(llm_config):
    """A native transformers config for the language model, chosen by its ``architectures``/``model_type``."""
    llm_config = dict(llm_config or {})
    architectures = llm_config.get("architectures") or ["Qwen2ForCausalLM"]
    model_type = llm_config.pop("model_type", None)
    if model_type is None:
        model_type = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama"}.get(architectures[0], "qwen2")
    llm_config["architectures"] = architectures
    return AutoConfig.for_model(model_type, **llm_config)


class InternVLChatConfig(PretrainedConfig):
    model_type = "internvl_chat"
    is_composition = True

    def __init__(
        self,
        vision_config=None,
        llm_config=None,
        use_backbone_lora=0,
        use_llm_lora=0,
        select_layer=-1,
        force_image_size=None,
        downsample_ratio=0.5,
        template=None,
        dynamic_image_size=False,
        use_thumbnail=False,
        ps_version="v1",
        min_dynamic_patch=1,
        max_dynamic_patch=6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(vision_config, PretrainedConfig):
            self.vision_config = vision_config
        else:
            self.vision_config = InternVisionConfig(**(vision_config or {}))
        if isinstance(llm_config, PretrainedConfig):
            self.llm_config = llm_config
        else:
            self.llm_config = _llm_config_from_dict(llm_config)
        self.use_backbone_lora = use_backbone_lora
        self.use_llm_lora = use_llm_lora
        self.select_layer = select_layer
        self.force_image_size = force_image_size
        self.downsample_ratio = downsample_ratio
        self.template = template
        self.dynamic_image_size = dynamic_image_size
        self.use_thumbnail = use_thumbnail
        self.ps_version = ps_version
        self.min_dynamic_patch = min_dynamic_patch
        self.max_dynamic_patch = max_dynamic_patch
        # The language model's width and embedding tying, mirrored at the top level as the released configs do.
        self.hidden_size = self.llm_config.hidden_size
        self.tie_word_embeddings = bool(getattr(self.llm_config, "tie_word_embeddings", False))
