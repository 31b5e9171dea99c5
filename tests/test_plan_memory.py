"""The planner against figures computed by hand or published, and its choices on known hardware."""
from __future__ import annotations

import json

import pytest

from ivl3_plugin.recipe.arch import ARCHS, arch_from_config, hf_config_dict, resolve_arch
from ivl3_plugin.recipe.memory import GIB, TrainSetup, estimate, layer_activation_bytes
from ivl3_plugin.recipe.plan import PlanRequest, make_plan

# Published Qwen2.5 model cards: (total, non-embedding) parameters in billions.
QWEN25 = {"1B": (0.49, 0.36), "2B": (1.54, 1.31), "8B": (7.61, 6.53), "14B": (14.7, 13.1), "38B": (32.5, 31.0),
          "78B": (72.7, 70.0)}


@pytest.mark.parametrize("size", QWEN25)
def test_llm_parameter_counts_match_the_published_cards(size):
    t = ARCHS[size].text
    total, non_embedding = QWEN25[size]
    assert t.params() / 1e9 == pytest.approx(total, rel=0.015)
    assert t.layers * t.layer_params() / 1e9 == pytest.approx(non_embedding, rel=0.015)


def test_vision_towers_are_300m_and_6b():
    assert ARCHS["8B"].vision.params() / 1e9 == pytest.approx(0.30, rel=0.02)
    assert ARCHS["78B"].vision.params() / 1e9 == pytest.approx(5.5, rel=0.02)  # InternViT-6B-448px-V2_5


def test_counts_equal_transformers_own_model_for_internvl3_1b():
    """Instantiate the real transformers class on the meta device: every parameter counted, none missing."""
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    arch = ARCHS["1B"]
    d = hf_config_dict(arch)
    cfg = InternVLConfig(**{k: v for k, v in d.items() if k not in ("architectures", "model_type")})
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(cfg)
    assert sum(p.numel() for p in model.model.vision_tower.parameters()) == arch.vision.params()
    assert sum(p.numel() for p in model.model.multi_modal_projector.parameters()) == arch.projector_params()
    assert sum(p.numel() for p in model.parameters()) == arch.total_params()


def test_config_round_trip_and_model_dir(tmp_path):
    for size in ("1B", "8B"):
        (tmp_path / size).mkdir()
        (tmp_path / size / "config.json").write_text(json.dumps(hf_config_dict(ARCHS[size])))
        got = resolve_arch(str(tmp_path / size))
        assert (got.vision, got.text, got.downsample) == (ARCHS[size].vision, ARCHS[size].text, 0.5)
    remote = {"vision_config": {"num_hidden_layers": 24, "hidden_size": 1024, "num_attention_heads": 16,
                                "intermediate_size": 4096, "image_size": 448, "patch_size": 14},
              "llm_config": {"model_type": "qwen2", "num_hidden_layers": 24, "hidden_size": 896,
                             "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
                             "vocab_size": 151674, "tie_word_embeddings": True}, "downsample_ratio": 0.5}
    assert arch_from_config(remote).total_params() == ARCHS["1B"].total_params()  # remote-code InternVLChatModel
    bad = dict(remote, llm_config={k: v for k, v in remote["llm_config"].items() if k != "hidden_size"})
    with pytest.raises(ValueError, match="missing field 'hidden_size'"):
        arch_from_config(bad)
    with pytest.raises(ValueError, match="not a model directory and not a known size"):
        resolve_arch("7B")


# InternVL3-8B as transformers counts it: LLM 7,612,820,992 + projector 27,540,480; ViT 304,014,336.
P_TRAIN_8B = 7_612_820_992 + 27_540_480
P_VIT_8B = 304_014_336


def test_8b_full_single_gpu_without_deepspeed_by_hand():
    m = estimate(ARCHS["8B"], TrainSetup(tuner="full", zero=0, world=1, frames=8))
    assert m.trainable_params == P_TRAIN_8B
    assert m.weights == 2 * P_TRAIN_8B  # bf16
    assert m.gradients == 2 * P_TRAIN_8B  # bf16
    assert m.optimizer == 4 * P_TRAIN_8B  # torch AdamW: two bf16 states
    assert m.step_transient == 0
    assert m.vision_tower > 2 * P_VIT_8B  # weights + forward working set


def test_8b_full_zero3_on_8_gpus_by_hand():
    m = estimate(ARCHS["8B"], TrainSetup(tuner="full", zero=3, world=8, frames=8))
    assert m.weights == 2 * P_TRAIN_8B / 8
    assert m.gradients == 2 * P_TRAIN_8B / 8
    assert m.optimizer == 12 * P_TRAIN_8B / 8  # fp32 master + exp_avg + exp_avg_sq, partitioned
    # step(): per optimizer sub-group (1e9 elements; here one of 955 M) a flat bf16 copy + its fp32 cast
    assert m.step_transient == 6 * P_TRAIN_8B / 8
    assert estimate(ARCHS["8B"], TrainSetup(tuner="full", zero=3, world=2)).step_transient == 6 * 1e9
    z2 = estimate(ARCHS["8B"], TrainSetup(tuner="full", zero=2, world=8, frames=8))
    assert z2.weights == 2 * P_TRAIN_8B and z2.gradients == 2 * P_TRAIN_8B / 8
    assert z2.step_transient == 4 * P_TRAIN_8B / 8  # fp32 cast of the (already flat) gradient partition
    z1 = estimate(ARCHS["8B"], TrainSetup(tuner="full", zero=1, world=8, frames=8))
    assert z1.gradients == 2 * P_TRAIN_8B and z1.optimizer == z2.optimizer
    off = estimate(ARCHS["8B"], TrainSetup(tuner="full", zero=3, offload=True, world=8, frames=8))
    assert off.weights == 0 and off.optimizer == 0
    all_params = P_TRAIN_8B + P_VIT_8B
    assert off.host_offload == 16 * P_TRAIN_8B / 8 + 2 * all_params / 8  # fp32 master, m, v, grads + bf16 weights


def test_lora_trainable_count_by_hand():
    # 1B: per layer r * (in + out) over q(896->896) k,v(896->128) o(896->896) gate,up(896->4864) down(4864->896)
    per_layer = 16 * ((896 + 896) + 2 * (896 + 128) + (896 + 896) + 2 * (896 + 4864) + (4864 + 896))
    m = estimate(ARCHS["1B"], TrainSetup(tuner="lora", zero=0, world=1))
    assert m.trainable_params == 24 * per_layer
    assert m.optimizer == 8 * 24 * per_layer  # fp32 adapters (peft upcasts), two fp32 states


def test_activation_terms_by_hand():
    # 1B layer, full FT: RMSNorm 2x(4h + 2x2h) + q,k,v,out 2x(2x896 + 2x128) + MLP 4x2x4864 = 57,344 B/token
    assert layer_activation_bytes(ARCHS["1B"], TrainSetup(tuner="full"), deepspeed=False) == 57_344
    # LoRA, frozen base: norms 2x4h + q,k,v,out 2x(2x896 + 2x128) + MLP 3x2x4864, plus per LoRA input
    # feature lora_A's input (fp32 in a plain bf16 loop; bf16 under autocast or DeepSpeed) and a 1-byte
    # dropout mask: (5x896 + 896 + 4864) input features
    plain = TrainSetup(tuner="lora", autocast=False)
    assert layer_activation_bytes(ARCHS["1B"], plain, deepspeed=False) == 40_448 + 5 * 10_240
    assert layer_activation_bytes(ARCHS["1B"], plain, deepspeed=True) == 40_448 + 3 * 10_240
    assert layer_activation_bytes(ARCHS["1B"], TrainSetup(tuner="lora"), deepspeed=False) == 40_448 + 3 * 10_240
    # compiled: the norms keep their bf16 input (2 x 2h less) and the dropout mask is regenerated
    compiled = TrainSetup(tuner="lora", compiled=True)
    assert layer_activation_bytes(ARCHS["1B"], compiled, deepspeed=False) == 40_448 - 2 * 2 * 896 + 2 * 10_240
    s = TrainSetup(tuner="full", zero=0, frames=16, text_tokens=256, label_tokens=128)
    m = estimate(ARCHS["1B"], s)
    assert m.seq_len == 16 * 256 + 256
    assert m.logits == 129 * 151_674 * 14  # bf16 logits + fp32 copy, log-softmax, gradient
    assert m.activations_other > 5 * m.activations  # no checkpointing keeps every layer
    twice = estimate(ARCHS["1B"], TrainSetup(tuner="full", zero=0, frames=32, text_tokens=0, label_tokens=128))
    once = estimate(ARCHS["1B"], TrainSetup(tuner="full", zero=0, frames=16, text_tokens=0, label_tokens=128))
    assert twice.activations == pytest.approx(2 * once.activations, rel=1e-9)
    capped = estimate(ARCHS["1B"], TrainSetup(tuner="full", frames=64, max_length=4096))
    assert capped.seq_len == 4096


def test_setup_errors_name_the_field():
    with pytest.raises(ValueError, match="zero"):
        TrainSetup(zero=4)
    with pytest.raises(ValueError, match="offload"):
        TrainSetup(zero=1, offload=True)
    with pytest.raises(ValueError, match="frames"):
        TrainSetup(frames=0)


@pytest.mark.parametrize("model, gpus, nodes, mem, tuner, expect", [
    ("1B", 1, 1, 24, None, ("full", None)),  # fits one 24 GiB card without DeepSpeed
    ("8B", 8, 1, 80, "full", ("full", "zero1")),  # the official stage fits
    ("14B", 8, 1, 80, "full", ("full", "zero2")),  # ZeRO-1 keeps full bf16 gradients: 2x14.8 GB too many
    ("78B", 8, 4, 80, "full", ("full", "zero3")),
    ("8B", 1, 1, 16, "lora", ("lora", "zero3_offload")),  # 15.3 GB of bf16 weights only fit offloaded
    ("78B", 8, 1, 80, None, ("lora", "zero3")),  # full would need offload: LoRA first without it
])
def test_plan_choices(model, gpus, nodes, mem, tuner, expect):
    plan = make_plan(PlanRequest(model=model, gpus_per_node=gpus, nodes=nodes, gpu_memory_gib=mem, tuner=tuner))
    assert plan.fits and (plan.tuner, plan.deepspeed) == expect
    assert plan.memory.total <= mem * GIB * 0.9
    assert plan.global_batch == 128 == plan.micro_batch * gpus * nodes * plan.grad_accum


def test_plan_that_cannot_fit_says_by_how_much():
    plan = make_plan(PlanRequest(model="78B", gpus_per_node=1, gpu_memory_gib=24, tuner="full"))
    assert not plan.fits and "does not fit" in plan.notes[0]


def test_plan_batch_split_rounds_up_and_says_so():
    plan = make_plan(PlanRequest(model="1B", gpus_per_node=8, global_batch=100, max_micro_batch=4))
    assert (plan.micro_batch, plan.grad_accum, plan.global_batch) == (4, 4, 128)
    assert any("not a multiple" in n for n in plan.notes)


def test_ivl3_plan_cli_json_and_text(capsys, tmp_path):
    from ivl3_plugin.cli import main

    assert main(["plan", "8B", "--gpus", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["recipe"], out["deepspeed"]) == ("internvl3-8b-full", "zero1")
    assert out["per_device_train_batch_size"] * 8 * out["gradient_accumulation_steps"] == out["global_batch"] == 128
    assert out["memory_gib"]["total"] <= out["budget_gib"]
    parts = out["memory_gib"]
    assert parts["total"] == pytest.approx(parts["weights"] + parts["vision_tower"] + parts["gradients"]
                                           + parts["optimizer"] + parts["buffers"]
                                           + max(parts["activations"] + parts["logits"], parts["step_transient"]))
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict(ARCHS["2B"])))
    assert main(["plan", str(tmp_path), "--gpus", "1", "--gpu-memory", "24"]) == 0
    text = capsys.readouterr().out
    assert "predicted peak" in text and "vision tower" in text and "optimizer states" in text
    assert main(["plan", "78B", "--gpus", "1", "--gpu-memory", "24", "--tuner", "full"]) == 1
    assert main(["plan", "5B"]) == 2


def test_zero3_keeps_up_to_the_reuse_distance_gathered_by_hand():
    from ivl3_plugin.recipe.memory import DS_FIXED, zero3_gathered_params

    # 1B: ViT 304,014,336 + projector 4,482,816 + LLM 493,798,016 (tied head) = 802,295,168 < 1e9: all of it
    assert zero3_gathered_params(ARCHS["1B"]) == 802_295_168
    # 8B: capped by ms-swift's stage3_max_reuse_distance (1e9 elements)
    assert zero3_gathered_params(ARCHS["8B"]) == 1e9
    z3 = estimate(ARCHS["8B"], TrainSetup(tuner="lora", zero=3, world=4, frames=8))
    h = 3584
    # gathered + prefetch + reduce bucket, and what DeepSpeed's engine holds besides (0.4 GiB)
    assert z3.buffers == 2 * 1e9 + 2 * 0.9 * h * h + 2 * h * h + DS_FIXED
    z2 = estimate(ARCHS["8B"], TrainSetup(tuner="lora", zero=2, world=4, frames=8))
    assert z2.buffers == 2 * z2.trainable_params + DS_FIXED  # stage 2: the reduce bucket (2e8 > 40 M adapters)
