"""The shared lower layer: one JSONL reader, atomic writes, the one mp4 writer, the layout facts."""
from __future__ import annotations

import os

import numpy as np
import pytest

from ivl3_plugin.shared.atomic import write_text_atomic
from ivl3_plugin.shared.jsonl import JsonlError, iter_jsonl, read_jsonl
from ivl3_plugin.shared.layout import DEFAULT_NUM_FRAMES, TILE_TOKENS, tokens_per_tile


def test_jsonl_lines_are_numbered_and_bad_lines_named(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text('{"a": 1}\n\nnot json\n[1, 2]\n')
    items = list(iter_jsonl(f))
    assert [(i.line, i.value) for i in items if not i.error] == [(1, {"a": 1}), (4, [1, 2])]
    assert [(i.line, i.error) for i in items if i.error] == [(3, "Expecting value")]
    with pytest.raises(JsonlError, match=r"rows\.jsonl:3: not valid JSON \(Expecting value\)"):
        read_jsonl(f)
    f.write_text('{"a": 1}\n[1]\n')
    with pytest.raises(JsonlError, match=r"rows\.jsonl:2: expected a JSON object, got list"):
        read_jsonl(f)


def test_jsonl_file_problems_name_the_file(tmp_path):
    with pytest.raises(JsonlError, match="missing.jsonl: no such file"):
        read_jsonl(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(JsonlError, match=r"empty\.jsonl: no rows \(an empty dataset file\)"):
        read_jsonl(empty, what="dataset")
    assert read_jsonl(empty, allow_empty=True) == []
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n')
    with pytest.raises(JsonlError, match=r"latin\.jsonl:2: not UTF-8 \(byte 0xe9\)"):
        read_jsonl(latin)


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    write_text_atomic(target, "old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left behind


def test_the_one_mp4_writer_writes_what_decord_reads(tmp_path):
    decord = pytest.importorskip("decord")
    from ivl3_plugin.shared.video import write_mp4

    frames = np.repeat((np.arange(6) * 40).astype(np.uint8)[:, None, None, None], 3, axis=3)
    frames = np.ascontiguousarray(np.broadcast_to(frames, (6, 64, 96, 3)))  # flat grey levels 0, 40, … 200
    path = write_mp4(tmp_path / "v.mp4", frames, fps=4, crf=0)
    vr = decord.VideoReader(str(path))
    got = vr.get_batch(list(range(6))).asnumpy()
    assert got.shape == (6, 64, 96, 3) and float(vr.get_avg_fps()) == 4.0
    got = got[:, 32, 48, 0].astype(int)
    assert np.all(np.abs(got - np.arange(6) * 40) <= 3)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_layout_facts():
    assert TILE_TOKENS == tokens_per_tile() == 256 and tokens_per_tile(448, 14, 1.0) == 1024
    assert DEFAULT_NUM_FRAMES == 16
