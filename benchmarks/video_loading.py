"""Video loading: one 32-frame training sample from our converted dataset vs ms-swift decoding the mp4,
and converter throughput with 1 vs 2 worker processes.  Prints figures and ratios side by side.

    .venv/bin/python benchmarks/video_loading.py            # 1280x720, 30 fps, 60 s source
    .venv/bin/python benchmarks/video_loading.py --tiny     # seconds-long smoke run

"Converted" = what a training step does with our dataset: open the row's 32 JPEG files as RGB PIL
images (ms-swift's image loading).  "ms-swift native" = ``swift.template.vision_utils.load_video_internvl``
on the source mp4 with num_segments=32 (decord, one frame at a time).  Both give the same 32 frames
(segment-centre indices), checked below.  Goals: >= 5x and >= 1.8x.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_video(path: Path, width: int, height: int, fps: int, seconds: float, seed: int = 0) -> Path:
    """A moving, textured H.264 video (x264 defaults: GOP 250, B-frames), like a typical camera file.

    Reused when ``path`` already exists (``--work DIR`` keeps the videos between runs).
    """
    if path.exists():
        return path
    import av

    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (max(2, height // 16), max(2, width // 8), 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((width * 2, height), Image.BILINEAR))  # smooth, like scenes
    n = int(round(fps * seconds))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "veryfast"}
        for k in range(n):
            off = (k * 4) % width
            frame = texture[:, off:off + width].copy()
            frame[: height // 8, : width // 8] = (k * 7) % 256
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def timed(fn, repeats: int):
    """Median wall and CPU seconds (CPU time is less disturbed by other jobs on a shared machine)."""
    fn()  # warm: libraries loaded, file in the page cache
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu), wall


def load_converted(frames):
    from PIL import Image

    out = []
    for p in frames:
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out


def convert_throughput(ann: Path, work: Path, workers: int, num_frames: int):
    from ivl3_plugin.convert import run_convert

    out, cache = work / f"out-w{workers}", work / f"cache-w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    t = time.perf_counter()
    res = run_convert(ann, out, num_frames=num_frames, workers=workers, cache_dir=cache, formats=["swift"])
    dt = time.perf_counter() - t
    assert res.converted == res.decoded and not res.skipped, res.skipped
    return res.converted * num_frames / dt, dt, res.converted


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--num-frames", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--videos", type=int, default=8, help="videos for the 1-vs-2-worker throughput run")
    ap.add_argument("--throughput-seconds", type=float, default=10.0, help="length of each throughput video")
    ap.add_argument("--tiny", action="store_true", help="320x180, 10 s: a quick smoke run")
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if args.tiny:
        args.width, args.height, args.seconds, args.videos, args.throughput_seconds = 320, 180, 10.0, 4, 4.0
        args.repeats = 3

    from swift.template.vision_utils import load_video_internvl

    from ivl3_plugin.convert import run_convert

    work = Path(args.work or tempfile.mkdtemp(prefix="ivl3-bench-")).resolve()  # rows hold absolute paths
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    tag = f"{args.width}x{args.height}-{args.fps}"
    src = make_video(work / f"source-{tag}-{args.seconds:g}s.mp4", args.width, args.height, args.fps, args.seconds)
    print(f"source: {args.width}x{args.height}, {args.fps} fps, {args.seconds:g} s, "
          f"{src.stat().st_size / 1e6:.1f} MB (made in {time.perf_counter() - t:.1f} s)")

    ann = work / "one.jsonl"
    ann.write_text(json.dumps({"id": "source", "video": str(src), "summary": "moving texture"}) + "\n")
    res = run_convert(ann, work / "converted", num_frames=args.num_frames, cache_dir=work / "cache",
                      formats=["swift"], val_fraction=0.0)
    if res.skipped or not res.converted:
        raise SystemExit(f"the converter skipped the source video: {res.skipped}")
    row = json.loads((res.out_dir / "swift" / "train.jsonl").read_text().splitlines()[0])
    frames = row["videos"][0]

    ours, ours_cpu, ours_all = timed(lambda: load_converted(frames), args.repeats)
    native, native_cpu, native_all = timed(lambda: load_video_internvl(str(src), num_segments=args.num_frames),
                                           args.repeats)
    a = np.stack([np.asarray(im) for im in load_converted(frames)]).astype(np.int16)
    b = np.stack([np.asarray(im) for im in load_video_internvl(str(src), num_segments=args.num_frames)])
    same = float(np.abs(a - b.astype(np.int16)).mean())
    import decord
    from swift.template.vision_utils import _get_index

    sample = json.loads((res.out_dir / "samples.jsonl").read_text())
    vr = decord.VideoReader(str(src))
    swift_idx = [int(i) for i in _get_index(None, float(vr.get_avg_fps()), len(vr) - 1, num_segments=args.num_frames)]
    assert sample["indices"] == swift_idx, (sample["indices"], swift_idx)
    print(f"\none {args.num_frames}-frame training sample (median of {args.repeats}):     wall        CPU")
    print(f"  ms-swift load_video_internvl on the mp4 : {native * 1e3:9.1f} ms {native_cpu * 1e3:9.1f} ms")
    print(f"  ivl3 converted dataset (JPEG frames)    : {ours * 1e3:9.1f} ms {ours_cpu * 1e3:9.1f} ms")
    print(f"  speed-up                                : {native / ours:9.1f}x  {native_cpu / ours_cpu:9.1f}x"
          "   (goal >= 5x)")
    print(f"  same frames: indices equal ms-swift's _get_index; mean |pixel difference| {same:.2f} of 255 "
          "(JPEG q90 vs decoded)")

    thr_ann = work / "many.jsonl"
    rows = []
    for k in range(args.videos):
        v = make_video(work / f"clip{k}-{tag}-{args.throughput_seconds:g}s.mp4", args.width, args.height, args.fps,
                       args.throughput_seconds, seed=k + 1)
        rows.append(json.dumps({"id": f"clip{k}", "video": str(v), "summary": "moving texture"}))
    thr_ann.write_text("\n".join(rows) + "\n")
    fps1, dt1, n = convert_throughput(thr_ann, work, 1, args.num_frames)
    fps2, dt2, _ = convert_throughput(thr_ann, work, 2, args.num_frames)
    print(f"\nconverter throughput, {n} videos of {args.throughput_seconds:g} s, {args.num_frames} frames each:")
    print(f"  1 worker : {fps1:8.1f} frames/s ({dt1:.1f} s)")
    print(f"  2 workers: {fps2:8.1f} frames/s ({dt2:.1f} s)")
    print(f"  scaling  : {fps2 / fps1:8.2f}x   (goal >= 1.8x)")
    figures = {"sample_ms_native": native * 1e3, "sample_ms_converted": ours * 1e3, "sample_speedup": native / ours,
               "sample_cpu_ms_native": native_cpu * 1e3, "sample_cpu_ms_converted": ours_cpu * 1e3,
               "native_all_ms": [x * 1e3 for x in native_all], "converted_all_ms": [x * 1e3 for x in ours_all],
               "frames_mean_abs_diff": same, "convert_fps_1": fps1, "convert_fps_2": fps2,
               "convert_scaling": fps2 / fps1, "load_average": os.getloadavg()[0], "args": vars(args)}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
