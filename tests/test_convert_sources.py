"""Every input format: CSV/TSV/JSON/JSONL tables (own keys, clips), a folder, the user guide's two shapes, a plugin."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.convert.videos import copy_demo, demo_rows, demo_video, write_jsonl
from ivl3_plugin import hookimpl, plugins
from ivl3_plugin.convert import run_convert
from ivl3_plugin.convert.sources import DatasetSource, SourceRow, pick_source

N = 3


def _samples(out: Path):
    return [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()]


def _convert(ann, tmp_path, **kw):
    kw.setdefault("num_frames", 4)
    kw.setdefault("formats", ["swift"])
    return run_convert(ann, tmp_path / "out", cache_dir=tmp_path / "cache", **kw)


def _expected():
    return [(r["id"], str(demo_video(i)), r["summary"]) for i, r in enumerate(demo_rows(N))]


def _check(out: Path, expected):
    got = [(s["id"], s["source"], s["summary"]) for s in _samples(out)]
    assert got == expected
    for s in _samples(out):
        assert len(s["frames"]) == 4 and all(Path(p).is_file() for p in s["frames"])


def test_jsonl_with_relative_paths_and_video_root(tmp_path):
    ann = write_jsonl(tmp_path / "a.jsonl", [{"id": i, "video": Path(v).name, "summary": s} for i, v, s in _expected()])
    res = _convert(ann, tmp_path, video_root=demo_video(0).parent)
    assert res.ok and res.converted == N
    _check(res.out_dir, _expected())


def test_json_list_and_wrapped_object(tmp_path):
    rows = [{"id": i, "video": v, "caption": s} for i, v, s in _expected()]
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"annotations": rows}))
    res = _convert(ann, tmp_path)
    _check(res.out_dir, _expected())


def test_csv_with_custom_columns_and_clip(tmp_path):
    ann = tmp_path / "a.csv"
    with open(ann, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip_name", "file", "what_happens", "t0", "t1"])
        for i, v, s in _expected():
            w.writerow([i, v, s, "0.5", "2.0"])
    res = _convert(ann, tmp_path, video_key="file", summary_key="what_happens", id_key="clip_name",
                   start_key="t0", end_key="t1")
    _check(res.out_dir, _expected())
    for s in _samples(res.out_dir):
        assert s["clip"] == [0.5, 2.0]
        assert all(4 <= i <= 16 for i in s["indices"])  # 0.5 s .. 2.0 s at 8 fps


def test_tsv_without_ids_derives_them_from_file_names(tmp_path):
    ann = tmp_path / "a.tsv"
    ann.write_text("video\tsummary\n" + "".join(f"{v}\t{s}\n" for _, v, s in _expected()))
    res = _convert(ann, tmp_path)
    assert [s["id"] for s in _samples(res.out_dir)] == [Path(v).stem for _, v, _ in _expected()]


def test_folder_of_videos_with_summary_files(tmp_path):
    folder = tmp_path / "vids"
    for k, (i, v, s) in enumerate(_expected()):
        copy_demo(k, folder / f"{i}.mp4")
        (folder / f"{i}.txt").write_text(s + "\n")
    res = _convert(folder, tmp_path)
    assert sorted((s["id"], s["summary"]) for s in _samples(res.out_dir)) == sorted((i, s) for i, _, s in _expected())


def _extract_frames(tmp_path: Path, k: int, n: int = 6):
    import decord
    from PIL import Image

    vr = decord.VideoReader(str(demo_video(k)))
    paths = []
    for j in range(n):
        p = tmp_path / "guide_frames" / f"v{k}" / f"frame{j}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(vr[j * 4].asnumpy()).save(p)
        paths.append(str(p))
    return paths


def test_user_guide_video_data_shape(tmp_path):
    from PIL import Image

    data = [{"video_id": i, "frames": _extract_frames(tmp_path, k), "summary": s}
            for k, (i, _, s) in enumerate(_expected())]
    ann = tmp_path / "video_summary_dataset.json"
    ann.write_text(json.dumps(data))
    assert pick_source(ann)[0] == "guide-video-data"
    res = _convert(ann, tmp_path, num_frames=3, image_format="png")
    samples = _samples(res.out_dir)
    assert [(s["id"], s["summary"]) for s in samples] == [(i, s) for i, _, s in _expected()]
    for s, d in zip(samples, data):
        assert s["indices"] == [0, 2, 3]  # width 5/3: floor(0.83 + round(0, 1.67, 3.33))
        for idx, p in zip(s["indices"], s["frames"]):
            assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(d["frames"][idx])))


def test_user_guide_evaluation_results_become_training_data(tmp_path):
    results = [{"id": i, "ground_truth": s, "prediction": "something else", "image": _extract_frames(tmp_path, k, 1)[0]}
               for k, (i, _, s) in enumerate(_expected())]
    ann = tmp_path / "evaluation_results.json"
    ann.write_text(json.dumps(results, indent=2))
    assert pick_source(ann)[0] == "guide-eval-results"
    res = _convert(ann, tmp_path, num_frames=4)
    samples = _samples(res.out_dir)
    assert [(s["id"], s["summary"]) for s in samples] == [(i, s) for i, _, s in _expected()]
    assert all(len(set(s["frames"])) == 1 and len(s["frames"]) == 4 for s in samples)  # one image, repeated


class TxtPairs(DatasetSource):
    """A third-party format: ``video|summary`` per line in a ``.pairs`` file."""

    def sniff(self, path):
        return Path(path).suffix == ".pairs"

    def read(self, path, **_):
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            video, summary = line.split("|")
            yield SourceRow(file=str(path), row=n, video=video, summary=summary, id=f"pair{n}")


class PairsPlugin:
    @hookimpl
    def register_dataset_sources(self, register):
        register("pairs", TxtPairs())


def test_third_party_source_through_the_hook(tmp_path):
    loaded = plugins.build(extra_plugins={"pairs-plugin": PairsPlugin()}, entry_points=False)
    assert not loaded.errors
    assert loaded.dataset_sources.entry("pairs").plugin == "pairs-plugin"
    ann = tmp_path / "x.pairs"
    ann.write_text("".join(f"{v}|{s}\n" for _, v, s in _expected()))
    assert pick_source(ann, registry=loaded.dataset_sources)[0] == "pairs"
    res = _convert(ann, tmp_path, registry=loaded.dataset_sources)
    _check(res.out_dir, [(f"pair{n}", v, s) for n, (_, v, s) in enumerate(_expected(), 1)])


class JsonlClaimer(DatasetSource):
    """A plugin that recognises the same files as a built-in source."""

    def sniff(self, path):
        return Path(path).suffix == ".jsonl"

    def read(self, path, **_):
        return iter(())


def test_a_plugin_source_is_tried_before_the_built_ins(tmp_path):
    class Plugin:
        @hookimpl
        def register_dataset_sources(self, register):
            register("claimer", JsonlClaimer())

    loaded = plugins.build(extra_plugins={"claimer-plugin": Plugin()}, entry_points=False)
    ann = write_jsonl(tmp_path / "a.jsonl", [{"id": i, "video": v, "summary": s} for i, v, s in _expected()])
    assert pick_source(ann, registry=loaded.dataset_sources)[0] == "claimer"
    assert pick_source(ann, registry=plugins.build(entry_points=False).dataset_sources)[0] == "table"
    assert pick_source(ann, "table", registry=loaded.dataset_sources)[0] == "table"


def test_unrecognised_file_names_the_file(tmp_path):
    from ivl3_plugin.convert.sources import SourceError

    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(SourceError, match="notes.json"):
        _convert(bad, tmp_path)
