# Written for ivl3-plugin's tiny test fixture (Apache-2.0); a from-scratch implementation of the
# interface of OpenGVLab's remote-code ``InternVLChatModel`` as ms-swift's ``internvl_chat`` loader and
# InternVL templates use it: ``vision_model`` + ``mlp1`` + ``language_model`` (a transformers causal LM),
# ``extract_feature``, ``img_context_token_id`` (set by the caller), ``forward`` and ``generate``.
"""InternVLChatModel: InternViT -> pixel shuffle -> ``mlp1`` projector -> language model.

``build_tiny_remote_model(post_init=False)`` writes this file without its ``post_init()`` call, like the
release-era classes (transformers 5 then fails in ``from_pretrained`` until the caller repairs it).
"""
import torch
from torch import nn
from transformers import LlamaForCausalLM, Qwen2ForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_internvl_chat import InternVLChatConfig
from .modeling_intern_vit import InternVisionModel

_LLM_CLASSES = {"Qwen2ForCausalLM": Qwen2ForCausalLM, "LlamaForCausalLM": LlamaForCausalLM}


def _llm_attention(config):
    """flash-attn when the vision config asks for it and it is importable, else eager (no SDPA path)."""
    if getattr(config.vision_config, "use_flash_attn", False):
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "eager"


class InternVLChatModel(PreTrainedModel):
    config_class = InternVLChatConfig
    main_input_name = "pixel_values"
    base_model_prefix = "language_model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternVisionEncoderLayer", "Qwen2DecoderLayer", "LlamaDecoderLayer"]
    _supports_flash_attn = True
    _supports_flash_attn_2 = True

    def __init__(self, config: InternVLChatConfig, vision_model=None, language_model=None):
        super().__init__(config)
        image_size = config.force_image_size or config.vision_config.image_size
        patch_size = config.vision_config.patch_size
        self.patch_size = patch_size
        self.select_layer = config.select_layer
        self.template = config.template
        self.downsample_ratio = config.downsample_ratio
        self.ps_version = config.ps_version
        self.num_image_token = int((image_size // patch_size) ** 2 * (config.downsample_ratio ** 2))
        self.img_context_token_id = None

        self.vision_model = vision_model if vision_model is not None else InternVisionModel(config.vision_config)
        if language_model is None:
            arch = (config.llm_config.architectures or ["Qwen2ForCausalLM"])[0]
            if arch not in _LLM_CLASSES:
                raise NotImplementedError(f"{arch} is not supported by this InternVLChatModel")
            config.llm_config._attn_implementation = _llm_attention(config)
            language_model = _LLM_CLASSES[arch](config.llm_config)
        self.language_model = language_model

        vit_width = config.vision_config.hidden_size
        llm_width = config.llm_config.hidden_size
        shuffled = vit_width * int(1 / self.downsample_ratio) ** 2
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(shuffled), nn.Linear(shuffled, llm_width), nn.GELU(), nn.Linear(llm_width, llm_width)
        )
        self.post_init()  # release-era: absent (build_tiny_remote_model(post_init=False) drops this line)

    # ---- embeddings (delegated to the language model) -------------------------------------------
    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ---- vision ------------------------------------------------------------------------------------
    def pixel_shuffle(self, x, scale_factor=0.5):
        """(N, W, H, C) -> (N, W*s, H*s, C/s^2); ``ps_version`` v2 restores the (W, H) axis order."""
        n, w, h, c = x.size()
        x = x.view(n, w, int(h * scale_factor), int(c / scale_factor))
        x = x.permute(0, 2, 1, 3).contiguous()
        x = x.view(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
        if self.ps_version != "v1":
            x = x.permute(0, 2, 1, 3).contiguous()
        return x

    def extract_feature(self, pixel_values):
        """Image tiles (B, 3, 448, 448) -> (B, num_image_token, llm hidden)."""
        if self.select_layer == -1:
            vit_embeds = self.vision_model(pixel_values=pixel_values, output_hidden_states=False).last_hidden_state
        else:
            vit_embeds = self.vision_model(pixel_values=pixel_values, output_hidden_states=True).hidden_states[
                self.select_layer]
        vit_embeds = vit_embeds[:, 1:, :]  # drop the class token
        side = int(vit_embeds.shape[1] ** 0.5)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], side, side, -1)
        vit_embeds = self.pixel_shuffle(vit_embeds, scale_factor=self.downsample_ratio)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], -1, vit_embeds.shape[-1])
        return self.mlp1(vit_embeds)

    def _merge(self, input_ids, vit_embeds):
        """Text embeddings with every ``img_context_token_id`` position replaced by a vision embedding, in order."""
        if self.img_context_token_id is None:
            raise ValueError("set model.img_context_token_id (the id of <IMG_CONTEXT>) before passing pixel_values")
        embeds = self.language_model.get_input_embeddings()(input_ids)
        batch, length, width = embeds.shape
        embeds = embeds.reshape(batch * length, width).clone()
        selected = input_ids.reshape(batch * length) == self.img_context_token_id
        features = vit_embeds.reshape(-1, width)
        if int(selected.sum()) != features.shape[0]:
            raise ValueError(f"{int(selected.sum())} <IMG_CONTEXT> tokens but {features.shape[0]} image embeddings")
        embeds[selected] = features.to(embeds.dtype)
        return embeds.reshape(batch, length, width)

    # ---- forward / generate --------------------------------------------------------------------------
    def forward(self, pixel_values=None, input_ids=None, attention_mask=None, position_ids=None, image_flags=None,
                past_key_values=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None:
            if pixel_values is not None:
                vit_embeds = self.extract_feature(pixel_values)
                if image_flags is not None:
                    vit_embeds = vit_embeds[image_flags.reshape(-1) == 1]
                inputs_embeds = self._merge(input_ids, vit_embeds)
            else:
                inputs_embeds = self.language_model.get_input_embeddings()(input_ids)
        outputs = self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = outputs.logits
        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].contiguous().float()
            shift_labels = labels[..., 1:].contiguous().to(shift_logits.device)
            loss = nn.functional.cross_entropy(shift_logits.view(-1, shift_logits.shape[-1]), shift_labels.view(-1),
                                               ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    @torch.no_grad()
    def generate(self, pixel_values=None, input_ids=None, attention_mask=None, visual_features=None,
                 generation_config=None, output_hidden_states=None, **generate_kwargs):
        if pixel_values is not None or visual_features is not None:
            vit_embeds = visual_features if visual_features is not None else self.extract_feature(pixel_values)
            inputs_embeds = self._merge(input_ids, vit_embeds)
        else:
            inputs_embeds = self.language_model.get_input_embeddings()(input_ids)
        return self.language_model.generate(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, generation_config=generation_config,
            output_hidden_states=output_hidden_states, use_cache=True, **generate_kwargs,
        )
