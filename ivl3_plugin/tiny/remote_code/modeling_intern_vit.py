# Written for ivl3-plugin's tiny test fixture (Apache-2.0); a from-scratch implementation of the
# InternViT tensor layout used by OpenGVLab's remote-code InternVL checkpoints.  Unlike the official
# file it needs no timm and implements eager attention only (the official one: flash-attn or eager).
"""InternViT vision tower: ``embeddings.{class_embedding, patch_embedding, position_embedding}`` and
``encoder.layers.N.{norm1, attn.qkv, attn.proj, [attn.q_norm, attn.k_norm], ls1, norm2, mlp.fc1, mlp.fc2, ls2}``."""
import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import PreTrainedModel

from .configuration_intern_vit import InternVisionConfig


class InternRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        dtype = hidden_states.dtype
        x = hidden_states.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dtype)


def _norm(config, width=None):
    width = width or config.hidden_size
    if config.norm_type == "rms_norm":
        return InternRMSNorm(width, eps=config.layer_norm_eps)
    if config.norm_type == "layer_norm":
        return nn.LayerNorm(width, eps=config.layer_norm_eps)
    raise ValueError(f"unknown norm_type {config.norm_type!r} (layer_norm or rms_norm)")


class InternVisionEmbeddings(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        dim = config.hidden_size
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.randn(1, 1, dim))
        self.patch_embedding = nn.Conv2d(config.num_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.position_embedding = nn.Parameter(torch.randn(1, self.num_patches + 1, dim))

    def _positions(self, height, width):
        """Position embeddings for a ``height`` x ``width`` patch grid (bicubic resize when it is not the trained one)."""
        side = self.image_size // self.patch_size
        cls_pos, grid = self.position_embedding[:, :1], self.position_embedding[:, 1:]
        if (height, width) == (side, side):
            return self.position_embedding
        grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        grid = grid.reshape(1, -1, height * width).permute(0, 2, 1).to(cls_pos.dtype)
        return torch.cat([cls_pos, grid], dim=1)

    def forward(self, pixel_values):
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))  # B, D, h, w
        batch, _, height, width = patches.shape
        patches = patches.flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(batch, 1, -1).to(patches.dtype)
        return torch.cat([cls, patches], dim=1) + self._positions(height, width).to(patches.dtype)


class InternAttention(nn.Module):
    """Fused ``qkv`` projection, optional RMS qk-normalisation over the full width, eager softmax attention."""

    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        if self.head_dim * self.num_heads != self.embed_dim:
            raise ValueError(f"hidden_size {self.embed_dim} is not divisible by num_attention_heads {self.num_heads}")
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(self.embed_dim, 3 * self.embed_dim, bias=config.qkv_bias)
        self.attn_drop = nn.Dropout(config.attention_dropout)
        self.proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.proj_drop = nn.Dropout(config.dropout)
        self.qk_normalization = config.qk_normalization
        if self.qk_normalization:
            self.q_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)
            self.k_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        batch, length, dim = hidden_states.shape
        q, k, v = self.qkv(hidden_states).split(dim, dim=-1)  # rows [0:D) query, [D:2D) key, [2D:3D) value
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)

        def heads(t):
            return t.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        weights = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        out = (self.attn_drop(weights) @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.proj_drop(self.proj(out))


class InternMLP(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.act = ACT2FN[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states):
        return self.fc2(self.act(self.fc1(hidden_states)))


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.attn = InternAttention(config)
        self.mlp = InternMLP(config)
        self.norm1 = _norm(config)
        self.norm2 = _norm(config)
        self.ls1 = nn.Parameter(config.initializer_factor * torch.ones(config.hidden_size))
        self.ls2 = nn.Parameter(config.initializer_factor * torch.ones(config.hidden_size))

    def forward(self, hidden_states):
        hidden_states = hidden_states + self.attn(self.norm1(hidden_states)) * self.ls1
        return hidden_states + self.mlp(self.norm2(hidden_states)) * self.ls2


class InternVisionEncoder(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.layers = nn.ModuleList([InternVisionEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, inputs_embeds, output_hidden_states=False):
        hidden_states = inputs_embeds
        all_states = [hidden_states] if output_hidden_states else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = self._gradient_checkpointing_func(layer.__call__, hidden_states)
            else:
                hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_states.append(hidden_states)
        return BaseModelOutput(last_hidden_state=hidden_states,
                               hidden_states=tuple(all_states) if output_hidden_states else None)


class InternVisionModel(PreTrainedModel):
    config_class = InternVisionConfig
    main_input_name = "pixel_values"
    base_model_prefix = "vision_model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternVisionEncoderLayer"]

    def __init__(self, config: InternVisionConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.post_init()  # release-era: absent (build_tiny_remote_model(post_init=False) drops this line)

    def get_input_embeddings(self):
        return self.embeddings.patch_embedding

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, InternRMSNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, InternVisionEmbeddings):
            nn.init.trunc_normal_(module.class_embedding, std=std)
            nn.init.trunc_normal_(module.position_embedding, std=std)
        elif isinstance(module, InternVisionEncoderLayer):
            nn.init.constant_(module.ls1, self.config.initializer_factor)
            nn.init.constant_(module.ls2, self.config.initializer_factor)

    def forward(self, pixel_values=None, output_hidden_states=None, return_dict=None, pixel_embeds=None, **kwargs):
        if pixel_values is None and pixel_embeds is None:
            raise ValueError("InternVisionModel needs pixel_values or pixel_embeds")
        hidden = pixel_embeds if pixel_embeds is not None else self.embeddings(pixel_values)
        encoded = self.encoder(hidden, output_hidden_states=bool(output_hidden_states))
        last = encoded.last_hidden_state
        return BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=last[:, 0, :],
                                          hidden_states=encoded.hidden_states)
