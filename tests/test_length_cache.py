"""The length cache of ``ivl3_length_group`` (``ivl3_plugin.recipe.length_cache``), with the real template
on the tiny model: a second pass on the same rows reads the cache (the template's planner is not called
once) and returns the same lengths; a changed row, max_length or tokenizer, or a changed frame folder,
plans again; a damaged cache file is reported, ignored and replaced."""
from __future__ import annotations

import copy
import json
import logging

import pytest

pytest.importorskip("swift")


class _Rows(list):
    """Raw rows as an HF dataset hands them out: a fresh copy per read (encode may change its input)."""

    def __getitem__(self, i):
        return copy.deepcopy(list.__getitem__(self, i))


class _Lazy:
    def __init__(self, rows):
        self.dataset = _Rows(rows)

    def __len__(self):
        return len(self.dataset)


@pytest.fixture(scope="module")
def rows(tmp_path_factory, demo_annotations):
    from tests.swift_cli import convert_demo_subset

    path = convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("lc"), 3, 4)
    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for k, r in enumerate(out):  # three different lengths
        r["videos"] = [r["videos"][0][:1 + k]]
        if r.get("timestamps"):
            r["timestamps"] = [r["timestamps"][0][:1 + k]]
    return out


def make_template(tiny_model, extra_token=None):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from swift import get_processor, get_template

    from ivl3_plugin.hosts.swift.install import install

    install()
    processor = get_processor(str(tiny_model))
    if extra_token:
        getattr(processor, "tokenizer", processor).add_tokens([extra_token])
    t = get_template(processor, template_type="ivl3_video", max_length=8192)
    t.set_mode("train")
    return t


@pytest.fixture(scope="module")
def template(tiny_model):
    return make_template(tiny_model)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("IVL3_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


class Counted:
    """Counts the real planner's calls on one template (the cache must not call it on a hit)."""

    def __init__(self, template, monkeypatch):
        self.calls = 0
        real = template.ivl3_length

        def counted(row):
            self.calls += 1
            return real(row)

        monkeypatch.setattr(template, "ivl3_length", counted, raising=False)


def lengths_of(rows, template, caplog):
    from ivl3_plugin.hosts.swift.length_group import dataset_lengths

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        return dataset_lengths(_Lazy(rows), template)


def test_second_pass_reads_the_cache_without_planning(rows, template, home, caplog, monkeypatch):
    counted = Counted(template, monkeypatch)
    first = lengths_of(rows, template, caplog)
    assert counted.calls == len(rows) and len(set(first)) == len(rows)
    assert "sample lengths planned in" in caplog.text
    files = list((home / "cache" / "lengths").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["lengths"] == first
    second = lengths_of(rows, template, caplog)
    assert second == first and counted.calls == len(rows)  # not one more encode
    assert f"sample lengths read from cache {files[0]}" in caplog.text


def test_a_changed_row_max_length_or_tokenizer_plans_again(rows, template, tiny_model, home, caplog, monkeypatch):
    counted = Counted(template, monkeypatch)
    base = lengths_of(rows, template, caplog)
    assert counted.calls == len(rows)

    edited = copy.deepcopy(rows)
    edited[1]["messages"][-1]["content"] += " Then it stops."
    longer = lengths_of(edited, template, caplog)
    assert counted.calls == 2 * len(rows) and "planned in" in caplog.text
    assert longer[1] > base[1] and longer[0] == base[0]

    monkeypatch.setattr(template, "max_length", 4096)
    assert lengths_of(rows, template, caplog) == base
    assert counted.calls == 3 * len(rows) and "planned in" in caplog.text
    monkeypatch.setattr(template, "max_length", 8192)
    assert lengths_of(rows, template, caplog) == base and counted.calls == 3 * len(rows)  # the first entry again
    assert "read from cache" in caplog.text

    other = make_template(tiny_model, extra_token="<ivl3-test-token>")  # same files, another tokenizer
    other_counted = Counted(other, monkeypatch)
    assert lengths_of(rows, other, caplog) == base  # the token never occurs: same lengths, but not trusted
    assert other_counted.calls == len(rows) and "planned in" in caplog.text
    assert len(list((home / "cache" / "lengths").glob("*.json"))) == 4


@pytest.mark.parametrize("damage", ["{not json", json.dumps({"v": 1, "key": "x", "lengths": [1, 2, 3]}), ""])
def test_a_damaged_cache_file_is_reported_planned_again_and_replaced(rows, template, home, caplog, monkeypatch,
                                                                     damage):
    counted = Counted(template, monkeypatch)
    good = lengths_of(rows, template, caplog)
    (path,) = (home / "cache" / "lengths").glob("*.json")
    path.write_text(damage)
    assert lengths_of(rows, template, caplog) == good and counted.calls == 2 * len(rows)
    assert "ignoring damaged length cache" in caplog.text and "planned in" in caplog.text
    assert json.loads(path.read_text())["lengths"] == good  # replaced by a good entry
    assert lengths_of(rows, template, caplog) == good and counted.calls == 2 * len(rows)


def test_a_frame_folder_or_video_file_that_changes_changes_the_key(tmp_path):
    """The row names a folder (its listing is the frame count) or a video file: same row, other files."""
    import os

    from ivl3_plugin.recipe.length_cache import rows_digest

    folder, video = tmp_path / "frames", tmp_path / "clip.mp4"
    folder.mkdir()
    (folder / "f1.jpg").write_bytes(b"x")
    video.write_bytes(b"v1")
    rows = [{"messages": [], "videos": [str(folder)]}, {"messages": [], "videos": [str(video)]}]
    before = rows_digest(rows)
    assert rows_digest(rows) == before
    (folder / "f2.jpg").write_bytes(b"y")
    os.utime(folder, ns=(1, 1))  # a coarse-mtime filesystem could miss the listing change: make it certain
    after_folder = rows_digest(rows)
    assert after_folder != before
    video.write_bytes(b"v2-longer")
    assert rows_digest(rows) != after_folder
    frames = [{"messages": [], "videos": [[str(folder / "f1.jpg")]]}]
    plain = rows_digest(frames)
    (folder / "f1.jpg").write_bytes(b"a bigger frame")
    assert rows_digest(frames) == plain  # one tile a frame: a frame's pixels do not change the length
    assert rows_digest(frames, stat_frames=True) != rows_digest(frames, stat_frames=False)
