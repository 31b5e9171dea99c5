"""The planner's per-layer activation bytes against what autograd really saves (real Qwen2 layer, CPU)."""
from __future__ import annotations

import pytest

from ivl3_plugin.recipe.arch import ARCHS
from ivl3_plugin.recipe.memory import TrainSetup, layer_activation_bytes

torch = pytest.importorskip("torch")
LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def saved_bytes_per_token(size: str, mode: str, seq: int = 128, compiled: bool = False) -> float:
    """Bytes autograd keeps for backward in one InternVL3 LLM layer at real width, per token.

    Parameters, the layer input (kept by gradient checkpointing, counted apart) and RoPE tables are
    excluded; storages are counted once.
    """
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

    t = ARCHS[size].text
    cfg = Qwen2Config(hidden_size=t.hidden, intermediate_size=t.ffn, num_attention_heads=t.heads,
                      num_key_value_heads=t.kv_heads, num_hidden_layers=1, vocab_size=32)
    cfg._attn_implementation = "sdpa"
    layer = Qwen2DecoderLayer(cfg, 0).to(torch.bfloat16)
    if mode == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        layer.requires_grad_(False)
        layer = inject_adapter_in_model(LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=LINEARS),
                                        layer)
        for name, p in layer.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()  # as get_peft_model leaves them (autocast_adapter_dtype)
    if compiled:  # as ivl3_compile does (recipe/compile.py)
        layer.compile(dynamic=True)
    x = torch.randn(1, seq, t.hidden, dtype=torch.bfloat16, requires_grad=True)
    pos = torch.arange(seq)[None]
    cos, sin = Qwen2RotaryEmbedding(cfg)(x, pos)
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(x, attention_mask=None, position_ids=pos, position_embeddings=(cos, sin))
    for t_ in [*layer.parameters(), x, cos, sin]:
        seen.pop(t_.untyped_storage().data_ptr(), None)
    return sum(seen.values()) / seq


@pytest.mark.parametrize("size", ["1B", "2B"])
def test_full_layer_activations_match_autograd(size):
    got = saved_bytes_per_token(size, "full")
    want = layer_activation_bytes(ARCHS[size], TrainSetup(tuner="full"), deepspeed=False)
    assert got == pytest.approx(want, rel=0.01)


def test_lora_layer_activations_match_autograd():
    t = ARCHS["1B"].text
    got = saved_bytes_per_token("1B", "lora")
    # on CPU dropout keeps its mask in the input dtype (fp32 here); CUDA's fused dropout keeps 1 byte
    cpu_extra = (4 - 1) * sum(i for i, _ in t.linear_shapes())
    want = layer_activation_bytes(ARCHS["1B"], TrainSetup(tuner="lora", autocast=False), deepspeed=False)
    assert got - cpu_extra == pytest.approx(want, rel=0.01)



def test_compiled_full_layer_activations_match_autograd():
    """Compiled (Inductor) layers keep less than eager: the planner counts what they keep.  The compiled
    norm keeps the layer input itself, which this count leaves out (a checkpointed layer keeps it too)."""
    t = ARCHS["1B"].text
    got = saved_bytes_per_token("1B", "full", compiled=True) + 2 * t.hidden
    want = layer_activation_bytes(ARCHS["1B"], TrainSetup(tuner="full", compiled=True), deepspeed=False)
    assert got == pytest.approx(want, rel=0.02)
    assert want < layer_activation_bytes(ARCHS["1B"], TrainSetup(tuner="full"), deepspeed=False)
