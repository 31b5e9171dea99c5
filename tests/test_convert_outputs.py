"""Every output format from one run, the ms-swift row contract, the demo's call, the deterministic split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivl3_plugin.convert import convert, split_for_id
from ivl3_plugin.datasets import DatasetSpec
from ivl3_plugin.shared.prompts import render_instruction
from ivl3_plugin.demo_data.generate import HELD_OUT


def _jsonl(p: Path):
    return [json.loads(l) for l in Path(p).read_text().splitlines()]


HELD_OUT_IDS = {"_".join(combo) for combo in HELD_OUT}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory, demo_annotations):
    """The demo's exact call (all 153 bundled videos; their ``split`` column holds 9 out), run once for the module."""
    tmp = tmp_path_factory.mktemp("demo")
    import os

    os.environ["IVL3_HOME"] = str(tmp / "home")  # the default cache lives under IVL3_HOME
    try:
        out = convert(demo_annotations, tmp / "out", num_frames=4, val_fraction=0.25, prompt="concise")
    finally:
        del os.environ["IVL3_HOME"]
    return out


def test_demo_call_returns_the_dir_and_a_dataset_spec_reads_it(demo_out, demo_videos):
    assert isinstance(demo_out, Path) and demo_out.is_dir()
    spec = DatasetSpec(path=demo_out)
    train, val = _jsonl(spec.split_file("train")), _jsonl(spec.split_file("val"))
    assert len(train) + len(val) == len(demo_videos) == 153
    assert sorted(r["id"] for r in train + val) == sorted(i for i, _, _ in demo_videos)
    assert len(val) == 9 and len(train) == 144  # the annotation's own split, not --val-fraction


def test_swift_row_contract(demo_out, demo_videos):
    summaries = {i: s for i, _, s in demo_videos}
    instruction = render_instruction("concise")
    for split in ("train", "val"):
        for row in _jsonl(demo_out / "swift" / f"{split}.jsonl"):
            assert set(row) == {"id", "messages", "videos", "timestamps"}
            assert isinstance(row["id"], str)
            assert row["messages"] == [{"role": "user", "content": "<video>\n" + instruction},
                                       {"role": "assistant", "content": summaries[row["id"]]}]
            [frames], [stamps] = row["videos"], row["timestamps"]
            assert len(frames) == len(stamps) == 4
            assert all(Path(p).is_absolute() and Path(p).is_file() for p in frames)
            assert stamps == sorted(stamps) and all(isinstance(t, float) for t in stamps)
            assert split == ("val" if row["id"] in HELD_OUT_IDS else "train")


def test_canonical_samples(demo_out, demo_videos):
    samples = _jsonl(demo_out / "samples.jsonl")
    assert [s["id"] for s in samples] == [i for i, _, _ in demo_videos]  # input order
    for s, (_, video, summary) in zip(samples, demo_videos):
        assert s["source"] == str(video) and s["summary"] == summary
        assert s["fps"] == 8.0 and s["clip"] is None and s["split"] in ("train", "val")
        assert s["timestamps"] == pytest.approx([i / 8.0 for i in s["indices"]], abs=1e-3)


def test_internvl_meta_and_annotations(demo_out):
    meta = json.loads((demo_out / "internvl" / "meta.json").read_text())
    assert set(meta) == {"ivl3_train", "ivl3_val"}
    swift_rows = {r["id"]: r for s in ("train", "val") for r in _jsonl(demo_out / "swift" / f"{s}.jsonl")}
    for name, entry in meta.items():
        rows = _jsonl(entry["annotation"])
        assert entry["length"] == len(rows) and entry["repeat_time"] == 1
        for r in rows:
            folder = Path(entry["root"]) / r["video"]
            assert r["video"].endswith("/") and folder.is_dir()
            frames = swift_rows[r["id"]]["videos"][0]
            assert sorted(str(p) for p in folder.glob("*.jpg")) == sorted(set(frames))
            assert r["conversations"][0] == {"from": "human", "value": swift_rows[r["id"]]["messages"][0]["content"]}
            assert r["conversations"][1]["from"] == "gpt"


def test_llamafactory_dataset_info_and_data(demo_out):
    info = json.loads((demo_out / "llamafactory" / "dataset_info.json").read_text())
    for split in ("train", "val"):
        entry = info[f"ivl3_{split}"]
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "videos": "videos"}
        rows = json.loads((demo_out / "llamafactory" / entry["file_name"]).read_text())
        swift = _jsonl(demo_out / "swift" / f"{split}.jsonl")
        assert [r["videos"] for r in rows] == [r["videos"] for r in swift]
        assert [r["messages"] for r in rows] == [r["messages"] for r in swift]


def test_hf_datasets_save_to_disk(demo_out):
    datasets = pytest.importorskip("datasets")
    dd = datasets.load_from_disk(str(demo_out / "hf"))
    assert set(dd) == {"train", "val"}
    for split in ("train", "val"):
        swift = _jsonl(demo_out / "swift" / f"{split}.jsonl")
        assert dd[split]["id"] == [r["id"] for r in swift]
        assert dd[split]["videos"] == [r["videos"] for r in swift]
        assert dd[split][0]["messages"] == swift[0]["messages"]


def test_split_is_deterministic_by_id():
    ids = [f"video_{k}" for k in range(2000)]
    first = [split_for_id(i, 0.2) for i in ids]
    assert first == [split_for_id(i, 0.2) for i in ids]
    assert 0.15 < first.count("val") / len(ids) < 0.25
    assert all(split_for_id(i, 0.0) == "train" for i in ids) and all(split_for_id(i, 1.0) == "val" for i in ids)


def test_formats_subset_and_unknown_format(tmp_path, demo_annotations):
    from ivl3_plugin.convert import run_convert

    rows = demo_annotations.read_text().splitlines()[:2]
    ann = tmp_path / "a.jsonl"
    ann.write_text("\n".join(json.loads(r) and r.replace('"videos/', f'"{demo_annotations.parent}/videos/')
                             for r in rows) + "\n")
    out = run_convert(ann, tmp_path / "o", num_frames=2, cache_dir=tmp_path / "c", formats=["internvl"]).out_dir
    assert (out / "internvl" / "meta.json").is_file() and (out / "samples.jsonl").is_file()
    assert not (out / "hf").exists() and not (out / "llamafactory").exists()
    with pytest.raises(ValueError, match="unknown output format"):
        run_convert(ann, tmp_path / "o2", formats=["parquet"])


def test_empty_val_split_still_loads_in_every_format(tmp_path, demo_annotations):
    datasets = pytest.importorskip("datasets")
    from ivl3_plugin.convert import run_convert

    row = json.loads(demo_annotations.read_text().splitlines()[0])
    ann = tmp_path / "a.jsonl"
    ann.write_text(json.dumps(dict(row, video=str(demo_annotations.parent / row["video"]), split=None)) + "\n")
    out = run_convert(ann, tmp_path / "o", num_frames=2, cache_dir=tmp_path / "c", val_fraction=0.0).out_dir
    assert (out / "swift" / "val.jsonl").read_text() == "" and len(_jsonl(out / "swift" / "train.jsonl")) == 1
    dd = datasets.load_from_disk(str(out / "hf"))
    assert (dd["train"].num_rows, dd["val"].num_rows) == (1, 0)
    assert json.loads((out / "llamafactory" / "val.json").read_text()) == []
