"""Preference pairs through ``ivl3_video`` in ms-swift's RLHF mode: one set of frames, one budget, answer labels."""
import copy
import json
import logging

import pytest

pytest.importorskip("swift")

NUM_FRAMES = 4


@pytest.fixture(scope="module")
def pair_rows(tmp_path_factory, demo_annotations, demo_videos):
    """Converted rows turned into pairs: chosen = the reference summary, rejected = another video's."""
    from tests.swift_cli import convert_demo_subset

    train = convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("conv"), 2, NUM_FRAMES)
    rows = [json.loads(l) for l in train.read_text().splitlines() if l.strip()]
    summaries = sorted({s for _, _, s in demo_videos})
    return [dict(r, rejected_response=next(s for s in summaries if s != r["messages"][-1]["content"]))
            for r in rows]


@pytest.fixture(scope="module")
def processor(tiny_model):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from swift import get_processor

    from ivl3_plugin.hosts.swift.install import install

    install()
    return get_processor(str(tiny_model))


def rlhf_template(proc, max_length=None):
    from swift import get_template

    t = get_template(proc, template_type="ivl3_video", max_length=max_length)
    t.set_mode("rlhf")
    return t


def answer(t, labels):
    return t.tokenizer.decode([x for x in labels if x != -100])


def test_pair_shares_frames_and_labels_only_the_answers(processor, pair_rows, monkeypatch):
    from ivl3_plugin.template import media

    reads = []
    real = media.preprocessor
    def counting(spec):
        def tile(src, **kw):
            reads.append(src)
            return real(spec)(src, **kw)
        return tile

    monkeypatch.setattr(media, "preprocessor", counting)
    t = rlhf_template(processor)
    row = pair_rows[0]
    enc = t.encode(copy.deepcopy(row))
    ctx = t.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    for side in ("chosen", "rejected"):
        assert enc[f"{side}_input_ids"].count(ctx) == 256 * NUM_FRAMES  # every frame, both sides
        assert enc[f"{side}_pixel_values"].shape[0] == NUM_FRAMES
        text = t.safe_decode(enc[f"{side}_input_ids"])
        assert all(f"Frame{i}: <img>" in text for i in range(1, NUM_FRAMES + 1))
        assert enc[f"{side}_length"] == len(enc[f"{side}_input_ids"])
    assert enc["chosen_pixel_values"] is enc["rejected_pixel_values"]
    assert len(reads) == NUM_FRAMES  # each frame read and tiled once for the pair, not once per side
    assert answer(t, enc["chosen_labels"]) == row["messages"][-1]["content"] + "<|im_end|>\n"
    assert answer(t, enc["rejected_labels"]) == row["rejected_response"] + "<|im_end|>\n"
    # the prompts are identical token for token: the pair differs in the answer only
    n = enc["chosen_labels"].index(next(x for x in enc["chosen_labels"] if x != -100))
    assert enc["chosen_input_ids"][:n] == enc["rejected_input_ids"][:n]


def test_budget_follows_the_longer_answer(processor, pair_rows, caplog):
    row = copy.deepcopy(pair_rows[0])
    full = len(rlhf_template(processor).encode(copy.deepcopy(row))["chosen_input_ids"])
    row["rejected_response"] = "wrong " * 200  # far longer than the chosen answer
    long_len = len(rlhf_template(processor).encode(copy.deepcopy(row))["rejected_input_ids"])
    assert long_len > full + 150
    budget = long_len - 100  # the chosen side alone would fit with every frame; the rejected one would not
    t = rlhf_template(processor, max_length=budget)
    with caplog.at_level(logging.WARNING, logger="ivl3_plugin.template"):
        enc = t.encode(copy.deepcopy(row))
    ctx = t.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert enc["chosen_input_ids"].count(ctx) == enc["rejected_input_ids"].count(ctx) == 256 * (NUM_FRAMES - 1)
    assert max(len(enc["chosen_input_ids"]), len(enc["rejected_input_ids"])) <= budget
    assert answer(t, enc["rejected_labels"]) == row["rejected_response"] + "<|im_end|>\n"  # not truncated
    assert any(f"frames {NUM_FRAMES}->{NUM_FRAMES - 1}" in r.message for r in caplog.records)


def test_rejected_with_other_media_is_refused(processor, pair_rows):
    from ivl3_plugin.hosts.swift.template import Ivl3FatalSampleError

    row = copy.deepcopy(pair_rows[0])
    row["rejected_videos"] = pair_rows[1]["videos"]
    row["rejected_messages"] = row["messages"][:-1] + [{"role": "assistant", "content": row.pop("rejected_response")}]
    with pytest.raises(Ivl3FatalSampleError, match="same input"):
        rlhf_template(processor).encode(row)


def test_collated_pair_batch_keeps_every_frame(processor, pair_rows):
    t = rlhf_template(processor)
    batch = t.data_collator([t.encode(copy.deepcopy(r)) for r in pair_rows])
    ctx = t.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    pairs = len(pair_rows)
    assert batch["input_ids"].shape[0] == 2 * pairs  # chosen rows, then rejected rows
    assert int((batch["input_ids"] == ctx).sum()) == 2 * pairs * NUM_FRAMES * 256
    assert batch["pixel_values"].shape[0] == pairs * NUM_FRAMES  # one set of frames per pair


def test_vision_runs_once_per_pair_with_the_same_embeddings(processor, pair_rows, tiny_model):
    """The collated pair batch carries the chosen pixels only; the forward hook's embeddings equal those of
    running the vision tower on both halves (ms-swift's way), for the -hf model and a remote-format stand-in."""
    import torch
    from torch import nn
    from transformers import InternVLForConditionalGeneration

    from ivl3_plugin.hosts.swift.pairs import REPEAT_KEY

    t = rlhf_template(processor)
    encoded = [t.encode(copy.deepcopy(r)) for r in pair_rows]
    batch = t.data_collator(copy.deepcopy(encoded))
    assert batch[REPEAT_KEY] == 2 and batch["pixel_values"].shape[0] == len(pair_rows) * NUM_FRAMES
    both = {k: v for k, v in batch.items() if k != REPEAT_KEY}
    both["pixel_values"] = torch.cat([batch["pixel_values"]] * 2)  # what ms-swift's collator would send
    hf = InternVLForConditionalGeneration.from_pretrained(str(tiny_model)).eval()
    calls = []

    class ChatFormat(nn.Module):  # what InternVLChatModel offers the template, features tied to each tile
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(len(t.tokenizer), 8)

        def get_input_embeddings(self):
            return self.embed

        def extract_feature(self, pixel_values):
            calls.append(pixel_values.shape[0])
            return pixel_values.float().mean(dim=(1, 2, 3))[:, None, None].expand(-1, 256, 8)

    with torch.no_grad():
        for model in (hf, ChatFormat()):
            shared = t._post_encode(model, dict(batch))["inputs_embeds"]
            twice = t._post_encode(model, dict(both))["inputs_embeds"]
            assert torch.allclose(shared, twice, atol=1e-5)
    assert calls == [len(pair_rows) * NUM_FRAMES, 2 * len(pair_rows) * NUM_FRAMES]
    broken = dict(batch, pixel_values=batch["pixel_values"][:-1])  # a tile missing: refused, never misplaced
    with pytest.raises(Exception, match="no longer share their frames"):
        t._post_encode(hf, broken)


@pytest.mark.parametrize("side", ["rejected", "chosen"])
def test_an_answer_with_image_markup_is_refused_naming_the_row(processor, pair_rows, side):
    """A sampled summary of a barely trained model can hold `<IMG_CONTEXT>`; as text it would become image
    slots (ms-swift then failed later with 'a pair batch has 2049 image tokens …'), so the row stops here."""
    from ivl3_plugin.hosts.swift.template import Ivl3FatalSampleError

    row = copy.deepcopy(pair_rows[0])
    if side == "rejected":
        row["rejected_response"] = "A red circle <IMG_CONTEXT> moves."
    else:
        row["messages"][-1]["content"] = "A red </img> circle."
    with pytest.raises(Ivl3FatalSampleError, match=r"image markup .*read as image slots") as info:
        rlhf_template(processor).encode(row)
    assert str(row["id"]) in str(info.value)
    row["rejected_response"] = "A plain summary."
    row["messages"][-1]["content"] = "A red circle moves right."
    assert rlhf_template(processor).encode(row)["chosen_input_ids"]
