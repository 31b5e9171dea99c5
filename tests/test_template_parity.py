"""Token-level parity with ms-swift's native InternVL templates, and the template's own rules.

Ours runs on converted frames; ``internvl2_5`` (remote-code InternVLChatModel format) on the raw
mp4 (it decodes with the same segment-centre rule), ``internvl_hf`` on the same frame files.
Deliberate differences (docs/template.md): ``<video>\\n`` loses its ``\\n`` (the frame block ends
in one already, as in InternVL's own layout), and -hf gets InternVL3's system prompt.
"""
import copy
import json
import logging

import pytest

pytest.importorskip("swift")

NUM_FRAMES = 4


@pytest.fixture(scope="module")
def converted(tmp_path_factory, demo_annotations, demo_videos):
    from tests.swift_cli import convert_demo_subset

    train = convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("conv"), 2, NUM_FRAMES)
    rows = [json.loads(l) for l in train.read_text().splitlines() if l.strip()]
    videos = {i: str(p) for i, p, _ in demo_videos}
    return [(r, videos[r["id"]]) for r in rows]


@pytest.fixture(scope="module")
def swift_env(tiny_model):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from swift import get_processor
    from swift.template import register_template

    from ivl3_plugin.hosts.swift.install import install
    install()
    from ivl3_plugin.hosts.swift.template import template_metas
    from ivl3_plugin.template.spec import TemplateSpec

    for name, kw in (("ivl3_test_long", dict(min_frames=2)), ("ivl3_test_skip", dict(on_overflow="skip"))):
        for meta in template_metas(TemplateSpec(name=name, **kw)):
            register_template(meta, exist_ok=True)
    return get_processor(str(tiny_model))


def template(proc, name, monkeypatch=None, max_length=None, **kw):
    from swift import get_template

    t = get_template(proc, template_type=name, max_length=max_length, **kw)
    t.set_mode("train")
    return t


def native_row(row, video=None):
    r = copy.deepcopy(row)
    r["messages"][0]["content"] = r["messages"][0]["content"].replace("<video>\n", "<video>")
    r.pop("timestamps", None)
    if video:
        r["videos"] = [video]
    return r


def test_same_tokens_as_internvl2_5_on_the_raw_video(swift_env, converted, monkeypatch):
    monkeypatch.setenv("VIDEO_SEGMENTS", str(NUM_FRAMES))
    ours, native = template(swift_env, "ivl3_video"), template(swift_env, "internvl2_5")
    for row, video in converted:
        a, b = ours.encode(copy.deepcopy(row)), native.encode(native_row(row, video))
        assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]
        assert a["pixel_values"].shape == b["pixel_values"].shape == (NUM_FRAMES, 3, 448, 448)
        # the only deliberate difference: native keeps "<video>\n"'s newline after the frame block
        c = native.encode(native_row(row, video) | {"messages": row["messages"]})
        assert len(c["input_ids"]) == len(a["input_ids"]) + 1


def test_same_tokens_as_internvl_hf_on_the_same_frames(swift_env, converted):
    ours = template(swift_env, "ivl3_video")
    native = template(swift_env, "internvl_hf", default_system=ours.template_meta.default_system)
    for row, _ in converted:
        a, b = ours.encode(copy.deepcopy(row)), native.encode(native_row(row))
        assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]
        assert (a["pixel_values"].float() - b["pixel_values"].float()).abs().max() < 0.1  # PIL vs torchvision resize


def test_layout_and_labels(swift_env, converted):
    ours = template(swift_env, "ivl3_video")
    row, _ = converted[0]
    enc = ours.encode(copy.deepcopy(row))
    text = ours.safe_decode(enc["input_ids"])
    ctx = ours.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert enc["input_ids"].count(ctx) == 256 * NUM_FRAMES
    assert "<|im_start|>system\n你是书生·万象" in text
    frames = "".join(f"Frame{i}: <img>[{ctx} * 256]</img>\n" for i in range(1, NUM_FRAMES + 1))
    assert frames + "Please provide a concise summary" in text
    answer = ours.tokenizer.decode([t for t in enc["labels"] if t != -100])
    assert answer == row["messages"][1]["content"] + "<|im_end|>\n"


def test_raw_video_is_sampled_like_the_converter(swift_env, converted, monkeypatch):
    monkeypatch.setenv("IVL3_TEMPLATE_ARGS", json.dumps({"ivl3_video": {"num_frames": NUM_FRAMES}}))
    ours = template(swift_env, "ivl3_video")
    for row, video in converted:
        raw = copy.deepcopy(row)
        raw["videos"] = [video]
        a, b = ours.encode(copy.deepcopy(row)), ours.encode(raw)
        assert a["input_ids"] == b["input_ids"]
        assert (a["pixel_values"].float() - b["pixel_values"].float()).abs().mean() < 0.05  # JPEG vs decoded


def test_timestamps_label_frames_and_are_required(swift_env, converted):
    from ivl3_plugin.hosts.swift.template import Ivl3FatalSampleError

    ours = template(swift_env, "ivl3_video_ts")
    row, _ = converted[0]
    text = ours.safe_decode(ours.encode(copy.deepcopy(row))["input_ids"])
    for i, t in enumerate(row["timestamps"][0], start=1):
        assert f"Frame{i} ({t:.1f}s): <img>" in text
    bare = copy.deepcopy(row)
    bare.pop("timestamps")
    with pytest.raises(Ivl3FatalSampleError, match="remove_unused_columns false"):
        ours.encode(bare)


def test_empty_instruction_comes_from_the_prompt_file(swift_env, converted):
    from ivl3_plugin.shared.prompts import render_instruction

    ours = template(swift_env, "ivl3_video")
    row = copy.deepcopy(converted[0][0])
    row["messages"][0]["content"] = "<video>"
    text = ours.safe_decode(ours.encode(row)["input_ids"])
    assert f"</img>\n{render_instruction('concise')}<|im_end|>" in text


def test_budget_drops_frames_and_logs(swift_env, converted, caplog):
    full = len(template(swift_env, "ivl3_video").encode(copy.deepcopy(converted[0][0]))["input_ids"])
    budget = full - 256  # one frame too many
    ours = template(swift_env, "ivl3_video", max_length=budget)
    row = converted[0][0]
    with caplog.at_level(logging.WARNING, logger="ivl3_plugin.template"):
        enc = ours.encode(copy.deepcopy(row))
    ctx = ours.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert len(enc["input_ids"]) <= budget
    assert enc["input_ids"].count(ctx) == 256 * (NUM_FRAMES - 1) and enc["pixel_values"].shape[0] == NUM_FRAMES - 1
    assert f"Frame{NUM_FRAMES - 1}: <img>" in ours.safe_decode(enc["input_ids"])
    assert any(row["id"] in r.message and f"frames {NUM_FRAMES}->{NUM_FRAMES - 1}" in r.message
               for r in caplog.records)
    assert [t for t in enc["labels"] if t != -100]  # the answer is still trained on


def test_overflow_is_loud_or_a_logged_skip(swift_env, converted, caplog):
    from swift.template.base import MaxLengthError

    from ivl3_plugin.hosts.swift.template import Ivl3FatalSampleError

    row = converted[0][0]
    with pytest.raises(Ivl3FatalSampleError, match=row["id"]):
        template(swift_env, "ivl3_test_long", max_length=400).encode(copy.deepcopy(row))
    assert not issubclass(Ivl3FatalSampleError, Exception)  # ms-swift's `except Exception` cannot swallow it
    with caplog.at_level(logging.WARNING, logger="ivl3_plugin.template"):
        with pytest.raises(MaxLengthError):
            template(swift_env, "ivl3_test_skip", max_length=100).encode(copy.deepcopy(row))
    assert any("SKIPPED" in r.message and row["id"] in r.message for r in caplog.records)


def test_missing_frame_file_is_named(swift_env, converted):
    from ivl3_plugin.hosts.swift.template import Ivl3FatalSampleError

    row = copy.deepcopy(converted[0][0])
    row["videos"][0][1] = "/nonexistent/frame.jpg"
    with pytest.raises(Ivl3FatalSampleError, match="/nonexistent/frame.jpg"):
        template(swift_env, "ivl3_video").encode(row)


def test_vision_forward_follows_the_loaded_checkpoint_format(swift_env, converted, tiny_model):
    """One template: remote-code models (``extract_feature``) and -hf models (``get_image_features``)."""
    import torch
    from torch import nn
    from transformers import InternVLForConditionalGeneration

    ours = template(swift_env, "ivl3_video")
    batch = ours.data_collator([ours.encode(copy.deepcopy(converted[0][0]))])
    ctx = batch["input_ids"] == ours.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")

    class ChatFormat(nn.Module):  # the two methods InternVLChatModel offers the template
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(len(ours.tokenizer), 8)

        def get_input_embeddings(self):
            return self.embed

        def extract_feature(self, pixel_values):
            return torch.full((pixel_values.shape[0], 256, 8), 7.0)

    emb = ours._post_encode(ChatFormat(), dict(batch))["inputs_embeds"]
    assert bool((emb[ctx] == 7.0).all()) and not bool((emb[~ctx] == 7.0).all())

    hf = InternVLForConditionalGeneration.from_pretrained(str(tiny_model)).eval()
    with torch.no_grad():
        emb = ours._post_encode(hf, dict(batch))["inputs_embeds"]
        feats = hf.model.get_image_features(batch["pixel_values"].float())
    feats = getattr(feats, "pooler_output", feats)
    assert torch.allclose(emb[ctx], feats.reshape(-1, feats.shape[-1]), atol=1e-5)


def test_registered_datasets_keep_id_and_timestamps(swift_env, converted, tmp_path):
    """ms-swift drops unknown columns; our row preprocessor carries them in chat_template_kwargs."""
    from datasets import load_dataset
    from swift.dataset import RowPreprocessor

    from ivl3_plugin.hosts.swift.template import Ivl3RowPreprocessor

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r, _ in converted))
    ds = RowPreprocessor.remove_useless_columns(Ivl3RowPreprocessor()(load_dataset("json", data_files=str(path),
                                                                                   split="train")))
    row = ds[0]
    assert row["chat_template_kwargs"]["id"] == converted[0][0]["id"]
    assert row["chat_template_kwargs"]["timestamps"] == converted[0][0]["timestamps"]
    text = template(swift_env, "ivl3_video_ts").safe_decode(template(swift_env, "ivl3_video_ts").encode(row)["input_ids"])
    assert f"Frame1 ({converted[0][0]['timestamps'][0][0]:.1f}s): <img>" in text
