"""Length grouping and packing change which samples share a row, never a sample's loss.

* ``Ivl3VideoTemplate.ivl3_length`` (what ``ivl3_length_group`` sorts by) is the exact encoded length;
* a sample's loss in a right-padded mixed-length micro-batch equals its loss alone (tiny model, fp32,
  SDPA; tolerance 1e-5 relative), so regrouping samples by length trains the same per-sample losses;
* packed rows under SDPA (ms-swift's padding-free layout: samples concatenated, position ids restarting
  at 0, no attention mask) are isolated by transformers' document mask built from the position ids --
  but only with ``use_cache=False``: with the config's default ``use_cache=True`` the forward makes a
  cache and transformers skips the packed-sequence detection, so samples attend across each other
  (ms-swift's trainer sets ``use_cache`` false before training); with running position ids they mix too;
* ms-swift 4.6 refuses ``--padding_free``/``--packing`` without flash attention (our host adds nothing).
"""
from __future__ import annotations

import copy
import json

import pytest

pytest.importorskip("swift")
torch = pytest.importorskip("torch")

FRAMES = (1, 4, 2, 3)  # frames kept per sample: four different lengths
TOL = 1e-5


@pytest.fixture(scope="module")
def rows(tmp_path_factory, demo_annotations):
    from tests.swift_cli import convert_demo_subset

    path = convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("lg"), 4, 4)
    base = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for k, (row, n) in enumerate(zip(base, FRAMES)):
        r = copy.deepcopy(row)
        r["videos"] = [r["videos"][0][:n]]
        if r.get("timestamps"):
            r["timestamps"] = [r["timestamps"][0][:n]]
        r["messages"][-1]["content"] += " It keeps moving." * k  # summaries of different lengths too
        out.append(r)
    return out


@pytest.fixture(scope="module")
def template(tiny_model):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from swift import get_processor, get_template

    from ivl3_plugin.hosts.swift.install import install

    install()
    t = get_template(get_processor(str(tiny_model)), template_type="ivl3_video", max_length=8192)
    t.set_mode("train")
    return t


@pytest.fixture(scope="module")
def model(tiny_model):
    from transformers import InternVLForConditionalGeneration

    return InternVLForConditionalGeneration.from_pretrained(str(tiny_model), dtype=torch.float32,
                                                            attn_implementation="sdpa").eval()


def per_sample_loss(logits, labels):
    lg, lb = logits[:, :-1].float(), labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(lg.transpose(1, 2), lb, ignore_index=-100, reduction="none")
    return ce.sum(1) / (lb != -100).sum(1)


def test_planned_length_is_the_encoded_length(template, rows):
    lengths = [template.ivl3_length(copy.deepcopy(r)) for r in rows]
    assert lengths == [len(template.encode(copy.deepcopy(r))["input_ids"]) for r in rows]
    assert len(set(lengths)) == len(rows)  # the rows really differ in length


def test_padded_batch_keeps_each_sample_loss(template, model, rows):
    enc = [template.encode(copy.deepcopy(r)) for r in rows]
    with torch.no_grad():
        alone = []
        for e in enc:
            b = template.data_collator([e])
            alone.append(per_sample_loss(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                               pixel_values=b["pixel_values"]).logits, b["labels"])[0])
        batch = template.data_collator(enc)
        assert int((batch["attention_mask"] == 0).sum()) > 0  # there is padding to get wrong
        mixed = per_sample_loss(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                      pixel_values=batch["pixel_values"]).logits, batch["labels"])
    torch.testing.assert_close(mixed, torch.stack(alone), rtol=TOL, atol=TOL)


def _packed_logits(model, enc, restart_positions: bool, use_cache: bool = False):
    ids = torch.tensor(sum((e["input_ids"] for e in enc), []))[None]
    pos = torch.cat([torch.arange(len(e["input_ids"])) for e in enc])[None] if restart_positions \
        else torch.arange(ids.shape[1])[None]
    pixels = torch.cat([e["pixel_values"] for e in enc])
    with torch.no_grad():
        logits = model(input_ids=ids, position_ids=pos, pixel_values=pixels, use_cache=use_cache).logits[0]
    return torch.split(logits, [len(e["input_ids"]) for e in enc])


def test_packed_row_under_sdpa_equals_unpacked(template, model, rows):
    enc = [template.encode(copy.deepcopy(r)) for r in rows]
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([e["input_ids"]]), pixel_values=e["pixel_values"]).logits[0]
                 for e in enc]
    packed = _packed_logits(model, enc, restart_positions=True)
    for a, p in zip(alone, packed):
        torch.testing.assert_close(p, a, rtol=TOL, atol=TOL)
    # controls: without restarting position ids, or with a cache made, the samples attend to each other
    for leaked in (_packed_logits(model, enc, restart_positions=False),
                   _packed_logits(model, enc, restart_positions=True, use_cache=True)):
        torch.testing.assert_close(leaked[0], alone[0], rtol=TOL, atol=TOL)  # the first sees no other
        assert min(float((a - p).abs().max()) for a, p in zip(alone[1:], leaked[1:])) > 1e-3


def test_swift_refuses_padding_free_without_flash_attention(tiny_model, tmp_path):
    from swift.arguments import SftArguments

    for flag in ("padding_free", "packing"):
        with pytest.raises(ValueError, match="flash attention"):
            SftArguments(model=str(tiny_model), dataset=["ivl3-demo"], template="ivl3_video", attn_impl="sdpa",
                         output_dir=str(tmp_path), **{flag: True})


class _Rows(list):
    """A raw-row dataset as ms-swift's lazy dataset wraps it (``.dataset``)."""


class _Lazy:
    def __init__(self, rows):
        self.dataset = _Rows(rows)

    def __len__(self):
        return len(self.dataset)


class _Template:
    padding_free, sequence_parallel_size = False, 1

    def ivl3_length(self, row):
        return row["n"]


class _Args:
    train_dataloader_shuffle = True


def test_callback_swaps_swift_batch_sampler_for_grouped_batches_and_refuses_what_it_cannot_group(
        tmp_path, monkeypatch):
    monkeypatch.setenv("IVL3_HOME", str(tmp_path))  # the length cache is written there
    import swift.trainers.mixin as swift_mixin

    from ivl3_plugin.hosts.swift.length_group import GroupedBatchSampler, LengthGroupError, \
        length_group_callback_class

    lengths = [100 * (i % 7) + i for i in range(40)]

    class Trainer:
        template, train_dataset = _Template(), _Lazy([{"n": n} for n in lengths])

        def get_train_dataloader(self):  # what ms-swift does inside: build its batch sampler by this name
            return swift_mixin.BatchSamplerShard(len(self.train_dataset), batch_size=4, shuffle=True,
                                                 drop_last=False, data_seed=7, tp_size=1)

    cls = length_group_callback_class()
    trainer = Trainer()
    original = swift_mixin.BatchSamplerShard
    cls(_Args(), trainer)
    sampler = trainer.get_train_dataloader()
    assert swift_mixin.BatchSamplerShard is original  # swapped for that call only
    assert isinstance(sampler, GroupedBatchSampler)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(40)) and len(sampler) == len(epoch0) == 10
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch0]
    assert max(spread) < 100  # each batch holds one length band
    sampler.set_epoch(1)
    assert list(sampler) != epoch0 and sorted(i for b in sampler for i in b) == list(range(40))

    for template, args, words in ((type("T", (_Template,), {"padding_free": True})(), _Args(), "padding_free"),
                                  (_Template(), type("A", (), {"train_dataloader_shuffle": False})(), "shuffle")):
        bad = Trainer()
        bad.template = template
        with pytest.raises(LengthGroupError, match=words):
            cls(args, bad)
    other = Trainer()
    other.template = object()  # not our template and no 'lengths' column: nothing to sort by
    cls(_Args(), other)
    with pytest.raises(LengthGroupError, match="ivl3_video"):
        other.get_train_dataloader()
