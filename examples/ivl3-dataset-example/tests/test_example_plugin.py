"""Tests of the example plugin, as a plugin author would write them.

They load the plugin module through ivl3-plugin's real loader
(``build(extra_plugins=...)``), so they pass whether or not the package is
pip-installed; ``tests/test_plugins_example.py`` in ivl3-plugin checks the
installed entry point and trains on the converted folder.
"""
from pathlib import Path

import pytest

from ivl3_dataset_example import plugin
from ivl3_dataset_example.source import SidecarFolder, parse_sidecar
from ivl3_plugin.plugins import build
from ivl3_plugin.shared.prompts import render_instruction

SAMPLE = Path(__file__).resolve().parent.parent / "sample"


@pytest.fixture(scope="module")
def loaded():
    p = build({"dataset-example": plugin}, entry_points=False)
    assert p.errors == []
    return p


def test_register_dataset_sources_adds_sidecar_folder(loaded):
    entry = loaded.dataset_sources.entry(plugin.SOURCE_NAME)
    assert entry.plugin == "dataset-example"
    assert isinstance(entry.obj, SidecarFolder)


def test_register_templates_adds_a_template_with_its_own_prompt_dir(loaded):
    spec = loaded.templates.get(plugin.TEMPLATE_NAME)
    assert spec.prompt_dir == plugin.PROMPT_DIR and (spec.prompt_dir / "scene_notes.j2").is_file()
    text = render_instruction(spec.prompt, spec.prompt_dir, num_frames=8, duration=3.0)
    assert text.startswith("Watch these 8 frames (3.0 s)")
    assert "which way it moves" in render_instruction(spec.prompt, spec.prompt_dir)


def test_reads_the_sample_folder():
    rows = list(SidecarFolder().read(SAMPLE))
    assert len(rows) == 6 and all(r.problem is None for r in rows)
    by_id = {r.id: r for r in rows}
    assert by_id["shapes__blue_square_falling"].summary == "A blue square falls from the top to the bottom."
    assert by_id["green_triangle_leftward"].clip == (0.5, 2.5)
    assert by_id["red_circle_rising"].clip is None
    assert all(Path(r.video).is_file() and r.file == str(SAMPLE) for r in rows)
    assert [r.row for r in rows] == list(range(1, 7))


def test_sniff_wants_a_folder_with_a_sidecar(tmp_path):
    src = SidecarFolder()
    assert src.sniff(SAMPLE)
    assert not src.sniff(tmp_path)
    (tmp_path / "a.mp4").write_bytes(b"")
    assert not src.sniff(tmp_path)
    assert not src.sniff(tmp_path / "a.mp4")


def test_bad_rows_are_yielded_with_a_problem_not_raised(tmp_path):
    for stem, text in {"no_txt": None, "empty": "\n", "backwards": "clip: 3-1\nA clip.", "ok": "Fine."}.items():
        (tmp_path / f"{stem}.mp4").write_bytes(b"")
        if text is not None:
            (tmp_path / f"{stem}.txt").write_text(text)
    problems = {r.id: r.problem for r in SidecarFolder().read(tmp_path)}
    assert problems["ok"] is None
    assert "no summary file no_txt.txt" in problems["no_txt"]
    assert "holds no summary" in problems["empty"]
    assert "not after start" in problems["backwards"]


@pytest.mark.parametrize("text,clip,summary", [
    ("A dog runs.", None, "A dog runs."),
    ("clip: 1.5-4\nA dog runs.\nThen sits.", (1.5, 4.0), "A dog runs.\nThen sits."),
    ("Clip: 0 - 2\n\nA cat.", (0.0, 2.0), "A cat."),
])
def test_parse_sidecar(text, clip, summary):
    assert parse_sidecar(text) == (clip, summary)
