"""Frame sampling: indices against InternVL's rule (written out here independently) and pixels against decord."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fixtures.convert.videos import demo_rows, demo_video, numbered_frames, write_video
from ivl3_plugin.convert import run_convert
from ivl3_plugin.shared.sampling import (Sampling, SamplingError, fixed_fps_indices, frame_indices,
                                          segment_centre_indices)


def reference_segment_centres(n_video: int, fps: float, n_seg: int, bound=None):
    """InternVL README ``get_index`` restated: the clip [start, end] in frame numbers (clamped to the
    video), cut into n_seg equal segments; segment k's pick is start + half a segment + round(k segments)."""
    first, last = 0, n_video - 1
    if bound is not None:
        first = max(first, int(round(bound[0] * fps)))
        last = min(last, int(round(bound[1] * fps)))
    width = (last - first) / n_seg
    picks = []
    for k in range(n_seg):
        offset = float(np.round(width * k))  # numpy rounds half to even, as InternVL's code does
        picks.append(math.floor(first + width / 2 + offset))
    return picks


@pytest.mark.parametrize("n_video,fps,n_seg,bound", [
    (24, 8.0, 8, None), (24, 8.0, 32, None), (300, 29.97, 16, None), (1000, 30.0, 8, (3.0, 20.5)),
    (5, 25.0, 8, None), (1, 8.0, 4, None), (250, 24.0, 32, (0.0, 5.0)), (97, 10.0, 12, (2.2, 100.0)),
])
def test_segment_indices_follow_internvl_rule(n_video, fps, n_seg, bound):
    got = segment_centre_indices(n_video, fps, n_seg, bound)
    assert got == reference_segment_centres(n_video, fps, n_seg, bound)
    assert len(got) == n_seg and all(0 <= i < n_video for i in got) and got == sorted(got)


def test_worked_example_24_frames_8_segments():
    # width 23/8 = 2.875: picks 1.4375 + round(0, 2.875, 5.75, 8.625, 11.5, 14.375, 17.25, 20.125)
    assert segment_centre_indices(24, 8.0, 8) == [1, 4, 7, 10, 13, 15, 18, 21]


def test_matches_ms_swift_get_index():
    pytest.importorskip("swift")
    from swift.template.vision_utils import _get_index

    for n, fps, seg, bound in [(24, 8.0, 8, None), (900, 30.0, 32, None), (400, 25.0, 16, (1.0, 9.0))]:
        assert segment_centre_indices(n, fps, seg, bound) == list(_get_index(bound, fps, n - 1, num_segments=seg))


def test_short_video_repeats_frames():
    got = segment_centre_indices(3, 8.0, 8)
    assert len(got) == 8 and set(got) <= {0, 1, 2} and got == sorted(got)
    assert segment_centre_indices(1, 8.0, 5) == [0] * 5


def test_fixed_fps_sampling():
    # 10 s at 30 fps, 2 frames/s: times 0.25, 0.75, ... 9.75 -> frame int(t * 30)
    got = fixed_fps_indices(300, 30.0, 2.0, 100)
    assert got == [int((k + 0.5) / 2.0 * 30) for k in range(20)]
    # a clip 2..4 s at 1 frame/s
    assert fixed_fps_indices(300, 30.0, 1.0, 100, (2.0, 4.0)) == [75, 105]
    # more frames than the cap: falls back to the segment rule over the clip
    assert fixed_fps_indices(300, 30.0, 10.0, 8) == segment_centre_indices(300, 30.0, 8, (0.0, 10.0))
    assert frame_indices(Sampling("fps", 4, 1.0), 300, 30.0) == segment_centre_indices(300, 30.0, 4, (0.0, 10.0))


def test_clip_outside_video_is_a_sampling_error():
    with pytest.raises(SamplingError, match="after the video ends"):
        segment_centre_indices(24, 8.0, 4, (10.0, 12.0))
    with pytest.raises(SamplingError):
        fixed_fps_indices(24, 8.0, 1.0, 4, (5.0, 6.0))


def _decord_frames(video: Path, indices):
    import decord

    vr = decord.VideoReader(str(video), num_threads=1)
    return vr.get_batch(list(indices)).asnumpy(), float(vr.get_avg_fps()), len(vr)


@pytest.mark.parametrize("num_frames", [8, 32])
def test_frames_match_a_direct_decord_read(tmp_path, num_frames):
    """PNG frames equal decord's pixels at the rule's indices; JPEG frames are close to them."""
    from PIL import Image

    rows = demo_rows(3)
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(
        '{"id": "%s", "video": "%s", "summary": "%s"}\n' % (r["id"], demo_video(i), r["summary"])
        for i, r in enumerate(rows)))
    for fmt in ("png", "jpeg"):
        out = tmp_path / fmt
        run_convert(ann, out, num_frames=num_frames, image_format=fmt, cache_dir=tmp_path / "cache",
                    formats=["swift"], val_fraction=0.0)
        samples = [__import__("json").loads(l) for l in (out / "samples.jsonl").read_text().splitlines()]
        assert [s["id"] for s in samples] == [r["id"] for r in rows]
        for i, s in enumerate(samples):
            frames, fps, n = _decord_frames(demo_video(i), reference_segment_centres(24, 8.0, num_frames))
            assert (fps, n) == (8.0, 24)
            assert s["indices"] == reference_segment_centres(n, fps, num_frames)
            assert s["timestamps"] == pytest.approx([k / fps for k in s["indices"]], abs=1e-3)
            ours = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in s["frames"]])
            assert ours.shape == frames.shape
            diff = np.abs(ours.astype(int) - frames.astype(int))
            if fmt == "png":
                assert diff.max() == 0
            else:
                assert diff.mean() < 3.0


def test_clip_bounds_and_pyav_agree_with_decord(tmp_path):
    """A clip picks the rule's indices inside it; the PyAV fallback decodes the same pixels."""
    from ivl3_plugin.convert.decode import _decode_decord, _decode_pyav

    video = write_video(tmp_path / "n.mp4", numbered_frames(40), fps=10)
    samp = Sampling("segment", 6)
    a = _decode_decord(str(video), samp, (1.0, 3.0))
    b = _decode_pyav(str(video), samp, (1.0, 3.0))
    assert a.indices == b.indices == reference_segment_centres(40, 10.0, 6, (1.0, 3.0))
    assert all(10 <= i <= 30 for i in a.indices)
    for x, y in zip(a.frames, b.frames):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
    assert a.timestamps == pytest.approx(b.timestamps)


def test_max_short_side_resizes(tmp_path):
    from PIL import Image

    write_video(tmp_path / "big.mp4", numbered_frames(6, h=120, w=200), fps=6)
    ann = tmp_path / "a.jsonl"
    ann.write_text('{"video": "big.mp4", "summary": "grey levels"}\n')
    out = tmp_path / "out"
    run_convert(ann, out, num_frames=2, max_short_side=60, cache_dir=tmp_path / "c", formats=["swift"])
    frame = __import__("json").loads((out / "samples.jsonl").read_text())["frames"][0]
    assert Image.open(frame).size == (100, 60)


def test_frame_size_stores_one_tile_per_frame_resized_once(tmp_path):
    """--frame-size N: each frame is PIL's bicubic N x N resize of decord's frame (PNG: exact), so the
    tiler needs no resize at train time and gives the same tensor as ms-swift's transform_image."""
    import json

    from PIL import Image

    from ivl3_plugin.tile import tile_image

    video = write_video(tmp_path / "wide.mp4", numbered_frames(6, h=120, w=200), fps=6)
    ann = tmp_path / "a.jsonl"
    ann.write_text('{"video": "wide.mp4", "summary": "grey levels"}\n')
    out = tmp_path / "out"
    run_convert(ann, out, num_frames=3, frame_size=64, image_format="png", cache_dir=tmp_path / "c",
                formats=["swift"], val_fraction=0.0)
    sample = json.loads((out / "samples.jsonl").read_text())
    decoded, _, _ = _decord_frames(video, sample["indices"])
    for path, arr in zip(sample["frames"], decoded):
        stored = Image.open(path).convert("RGB")
        assert stored.size == (64, 64)
        expected = Image.fromarray(arr).resize((64, 64), Image.BICUBIC)
        assert np.array_equal(np.asarray(stored), np.asarray(expected))
        # the template's tiling of the stored frame = tiling the source frame at one tile per frame
        direct = tile_image(Image.fromarray(arr), tile_size=64, max_tiles=1).pixel_values
        assert float((tile_image(stored, tile_size=64, max_tiles=1).pixel_values - direct).abs().max()) < 1e-6


def test_frame_size_keys_the_cache_and_excludes_max_short_side(tmp_path):
    from ivl3_plugin.convert.cache import ImageOptions, entry_key

    assert "frame_size" not in ImageOptions().key()  # keys of caches made before the option stay valid
    assert ImageOptions(frame_size=448).key()["frame_size"] == 448
    assert entry_key("d", {}, None, ImageOptions()) != entry_key("d", {}, None, ImageOptions(frame_size=448))
    with pytest.raises(ValueError, match="frame_size and max_short_side exclude each other"):
        ImageOptions(max_short_side=448, frame_size=448)
    with pytest.raises(ValueError, match="frame_size must be a positive"):
        ImageOptions(frame_size=0)
