"""What transformers 4.x reads from the configs and tokenizers ivl3 checkpoint writes (transformers 5 does the writing)."""
import json
import shutil
from pathlib import Path

import pytest
import transformers
from transformers import AutoConfig, AutoTokenizer

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def test_this_is_transformers_4():
    assert transformers.__version__.startswith("4."), transformers.__version__


def _source_llm(folder: str) -> dict:
    """The language-model config as the fixture builder wrote it (released, 4.x-era spelling)."""
    return json.loads((Path(folder) / "config.json").read_text())["llm_config"]


@pytest.mark.parametrize("case", ["default", "dynamic"])
def test_hf_output_config_reads_right_in_transformers_4(written, case):
    paths = written[case]
    source = _source_llm(paths["remote"])
    config = AutoConfig.from_pretrained(paths["hf"])
    assert type(config).__name__ == "InternVLConfig"
    text = config.text_config
    assert text.rope_theta == source["rope_theta"]  # 1e6 / 5e5, not the 4.x fallback 10000
    if source.get("rope_scaling"):
        assert text.rope_scaling["rope_type"] == source["rope_scaling"]["type"]
        assert text.rope_scaling["factor"] == source["rope_scaling"]["factor"]
    else:
        assert text.rope_scaling is None
    assert text.tie_word_embeddings == source["tie_word_embeddings"] == config.tie_word_embeddings
    assert (text.vocab_size, text.hidden_size, text.num_hidden_layers) == (
        source["vocab_size"], source["hidden_size"], source["num_hidden_layers"])
    assert str(text.torch_dtype).endswith("float32") and str(config.torch_dtype).endswith("float32")
    vision = json.loads((Path(paths["remote"]) / "config.json").read_text())["vision_config"]
    v = config.vision_config
    assert (v.use_qk_norm, v.norm_type, v.attention_bias) == (
        vision["qk_normalization"], vision["norm_type"], vision["qkv_bias"])
    assert list(v.image_size) == [448, 448] and list(v.patch_size) == [14, 14]
    assert config.image_seq_length == 256 and config.downsample_ratio == 0.5


@pytest.mark.parametrize("case", ["default", "dynamic"])
def test_hf_output_tokenizer_and_processors_read_right_in_transformers_4(written, case):
    folder = written[case]["hf"]
    config = AutoConfig.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == config.image_token_id
    # the named tokens InternVLProcessor reads, as 4.x sets them from extra_special_tokens
    assert (tok.start_image_token, tok.end_image_token, tok.context_image_token, tok.video_token) == (
        "<img>", "</img>", "<IMG_CONTEXT>", "<video>")
    assert tok.chat_template and "<IMG_CONTEXT>" in tok.chat_template
    from transformers.image_processing_base import ImageProcessingMixin

    image, _ = ImageProcessingMixin.get_image_processor_dict(folder)
    assert image["size"] == {"height": 448, "width": 448}
    assert image["image_mean"] == IMAGENET_MEAN and image["image_std"] == IMAGENET_STD
    video = json.loads((Path(folder) / "video_preprocessor_config.json").read_text())
    assert video["size"] == {"height": 448, "width": 448} and video["image_mean"] == IMAGENET_MEAN


@pytest.mark.parametrize("key", ["remote", "remote_again"])
@pytest.mark.parametrize("case", ["default", "dynamic"])
def test_remote_config_reads_right_in_transformers_4(written, case, key):
    """The remote config through its own configuration code (trust_remote_code on the local folder)."""
    source = _source_llm(written[case]["remote"])
    config = AutoConfig.from_pretrained(written[case][key], trust_remote_code=True)
    llm = config.llm_config
    assert type(llm).__name__ == "Qwen2Config"
    assert llm.rope_theta == source["rope_theta"]
    if source.get("rope_scaling"):
        assert llm.rope_scaling["factor"] == source["rope_scaling"]["factor"]
        assert llm.rope_scaling.get("rope_type", llm.rope_scaling.get("type")) == "dynamic"
    assert llm.tie_word_embeddings == source["tie_word_embeddings"]
    assert str(llm.torch_dtype).endswith("float32")
    assert config.ps_version == "v2" and config.force_image_size == 448
    tok = AutoTokenizer.from_pretrained(written[case][key])
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == AutoTokenizer.from_pretrained(
        written[case]["remote"]).convert_tokens_to_ids("<IMG_CONTEXT>")


def test_control_a_transformers_5_config_without_rope_theta_reads_10000(written, tmp_path):
    """Why the fields are written: strip them and transformers 4.x falls back to rope_theta 10000."""
    folder = tmp_path / "stripped"
    shutil.copytree(written["default"]["hf"], folder)
    data = json.loads((folder / "config.json").read_text())
    for key in ("rope_theta", "rope_scaling"):
        data["text_config"].pop(key)
    assert data["text_config"]["rope_parameters"]["rope_theta"] == 1e6  # what transformers 5 alone writes
    (folder / "config.json").write_text(json.dumps(data))
    assert AutoConfig.from_pretrained(folder).text_config.rope_theta == 10000.0
