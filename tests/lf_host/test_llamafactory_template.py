"""Our template and multimodal plugin inside LLaMA-Factory's own registries and encoder."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("llamafactory.data")

from llamafactory.data import mm_plugin as lf_mm  # noqa: E402
from llamafactory.data import template as lf_template  # noqa: E402

from ivl3_plugin.hosts.llamafactory import datasets as host, install as lf_install  # noqa: E402
from ivl3_plugin.hosts.llamafactory.mm import Ivl3VideoPlugin  # noqa: E402
from ivl3_plugin.template.spec import INTERNVL3_SYSTEM  # noqa: E402


@pytest.fixture(scope="module")
def installed():
    return lf_install.install()


def test_install_registers_template_and_mm_plugin_idempotently(installed):
    assert "ivl3_video" in installed
    assert lf_mm.PLUGINS[lf_install.MM_PLUGIN] is Ivl3VideoPlugin
    tpl = lf_template.TEMPLATES["ivl3_video"]
    assert isinstance(tpl.mm_plugin, Ivl3VideoPlugin) and tpl.mm_plugin.ivl3_template == "ivl3_video"
    assert tpl.default_system == INTERNVL3_SYSTEM
    assert lf_install.install() == installed  # twice: harmless (register_template itself would raise)


def test_a_template_named_like_a_llamafactory_one_is_a_clear_error():
    from ivl3_plugin import hookimpl
    from ivl3_plugin.plugins import build
    from ivl3_plugin.template.spec import TemplateSpec

    class Clash:
        @hookimpl
        def register_templates(register):
            register("intern_vl", TemplateSpec(name="intern_vl"))

    with pytest.raises(RuntimeError, match="'intern_vl'.*'clash'.*LLaMA-Factory's own template"):
        lf_install.install(build({"clash": Clash}, entry_points=False))


def test_encoded_sample_has_our_frame_layout(installed, tiny_model, tmp_path):
    """LLaMA-Factory's encoder on a 2-frame sample writes exactly our ms-swift layout."""
    from PIL import Image
    from transformers import AutoProcessor, AutoTokenizer

    frames = []
    for i, colour in enumerate(["red", "blue"]):
        frames.append(str(tmp_path / f"{i}.jpg"))
        Image.new("RGB", (96, 96), colour).save(frames[-1])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    processor = AutoProcessor.from_pretrained(tiny_model)
    tpl = lf_template.TEMPLATES["ivl3_video"]
    messages = [{"role": "user", "content": "<video>\nSummarise."}, {"role": "assistant", "content": "Done."}]
    expanded = tpl.mm_plugin.process_messages(messages, [], [frames], [], processor)
    block = "<img>" + "<IMG_CONTEXT>" * 256 + "</img>"
    assert expanded[0]["content"] == f"Frame1: {block}\nFrame2: {block}\nSummarise."
    prompt_ids, answer_ids = tpl.encode_oneturn(tokenizer, expanded)
    text = tokenizer.decode(prompt_ids + answer_ids)
    assert text == (f"<|im_start|>system\n{INTERNVL3_SYSTEM}<|im_end|>\n<|im_start|>user\n"
                    f"Frame1: {block}\nFrame2: {block}\nSummarise.<|im_end|>\n<|im_start|>assistant\n"
                    "Done.<|im_end|>\n")
    ctx = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert prompt_ids.count(ctx) == 512
    mm = tpl.mm_plugin.get_mm_inputs([], [frames], [], [0], [1], [0], [[0]], processor)
    assert tuple(mm["pixel_values"].shape) == (2, 3, 448, 448)


def test_dataset_info_for_a_converted_folder_and_its_val_split(converted_lf, tmp_path):
    path = host.write_dataset_info(tmp_path, [str(converted_lf), f"{converted_lf}-val"])
    info = json.loads(path.read_text())
    assert info[str(converted_lf)]["file_name"] == str(converted_lf / "llamafactory" / "train.json")
    assert info[f"{converted_lf}-val"]["file_name"] == str(converted_lf / "llamafactory" / "val.json")
