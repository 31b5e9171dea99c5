"""``benchmarks/gpu_train.py --frame-format png``: our sides read exactly the pixels native decodes from the
mp4, so the sides' losses compare without JPEG's re-encoding between them (docs/benchmarks.md, "8B full's
losses: the frames, not the kernels")."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from gpu_train_data import make_data  # noqa: E402

decord = pytest.importorskip("decord")


def _frames(data: dict) -> tuple:
    """``(video path, [frame files])`` of the first row on each side."""
    ours = json.loads(data["ours"].read_text().splitlines()[0])["videos"][0]
    native = json.loads(data["native"].read_text().splitlines()[0])["videos"][0]
    return native, ours


def _pixel_error(data: dict) -> float:
    """Mean |stored - decoded| of each stored frame against the decoded frame nearest it (InternVL's segment
    rule picks the indices: of 4 frames, 0, 1, 2, 2), averaged over the frames."""
    from PIL import Image

    native, ours = _frames(data)
    reader = decord.VideoReader(native)
    decoded = reader.get_batch(list(range(len(reader)))).asnumpy().astype(int)
    stored = [np.asarray(Image.open(f).convert("RGB")).astype(int) for f in ours]
    return float(np.mean([min(np.abs(d - s).mean() for d in decoded) for s in stored]))


def test_png_frames_are_the_decoded_pixels_and_jpeg_frames_are_not(tmp_path):
    png = make_data(tmp_path, 2, 4, 64, frame_format="png")
    jpeg = make_data(tmp_path, 2, 4, 64)  # the same clips (written once), converted a second time
    assert all(f.endswith(".png") for f in _frames(png)[1])
    assert all(f.endswith(".jpg") for f in _frames(jpeg)[1])
    assert _frames(png)[0] == _frames(jpeg)[0]  # native reads the same mp4 either way
    assert _pixel_error(png) == 0.0
    assert _pixel_error(jpeg) > 1.0  # the noise background is JPEG's worst case


def test_mixed_data_refuses_png(tmp_path, capsys):
    from gpu_train import main

    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--tiny", "--mixed", "2-3", "--frame-format", "png", "--work", str(tmp_path)])
    assert "--frame-format" in capsys.readouterr().err
