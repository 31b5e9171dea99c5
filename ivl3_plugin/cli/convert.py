"""``ivl3 convert INPUT... -o OUT``: videos + annotations -> frames and ms-swift/InternVL/LLaMA-Factory/HF datasets.

Exit status: 0 when every row converted, 1 when some rows were skipped (see
``OUT/skipped.jsonl``), 2 for bad options, an unreadable annotation file, an unusable output folder,
or a run in which no row converted.  With ``--shard i/N`` the shard that finishes last writes the
dataset files.
"""
from __future__ import annotations


from ..shared.layout import DEFAULT_NUM_FRAMES
from . import UserError
from ._types import POSITIVE, POSITIVE_INT, number


def _shard(text: str):
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard wants i/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserError(f"--shard {text}: need 0 <= i < N")
    return i, n


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="decode videos once into frames + dataset files (all hosts' formats)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", help="annotation file(s) (csv/tsv/json/jsonl, user-guide shapes) or a folder")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--video-root", help="folder that relative video paths are under (default: the annotation's)")
    p.add_argument("--source", help="input format name (default: detected; see `ivl3 plugins`)")
    g = p.add_argument_group("annotation keys/columns")
    g.add_argument("--video-key")
    g.add_argument("--summary-key")
    g.add_argument("--id-key")
    g.add_argument("--start-key", help="clip start (seconds)")
    g.add_argument("--end-key", help="clip end (seconds)")
    g.add_argument("--frames-fps", type=POSITIVE, help="frame rate of image lists (user-guide video_data)")
    s = p.add_argument_group("sampling and images")
    s.add_argument("--num-frames", type=POSITIVE_INT, default=DEFAULT_NUM_FRAMES,
                   help=f"frames per video (default {DEFAULT_NUM_FRAMES}; official trainer: 8-32)")
    s.add_argument("--sampling", choices=["segment", "fps"], default="segment",
                   help="segment: InternVL segment centres (default); fps: one frame per 1/--fps s, at most --num-frames")
    s.add_argument("--fps", type=POSITIVE, default=1.0)
    s.add_argument("--image-format", choices=["jpeg", "png"], default="jpeg")
    s.add_argument("--quality", type=number(int, 1, 100, what="JPEG quality is 1..100"), default=90,
                   help="JPEG quality")
    s.add_argument("--max-short-side", type=POSITIVE_INT, help="downscale frames so the short side is at most this")
    s.add_argument("--frame-size", type=POSITIVE_INT,
                   help="store each frame as an N x N image, e.g. 448: what InternVL3 feeds the model for a "
                        "one-tile frame, so training reads frames without resizing them at every step")
    s.add_argument("--decoder", choices=["auto", "decord", "pyav"], default="auto")
    d = p.add_argument_group("dataset")
    d.add_argument("--prompt", default="concise", help="instruction prompt file templates/<name>.j2")
    d.add_argument("--val-fraction", type=number(float, 0, 1, high_open=True, what="must be in [0, 1)"),
                   default=0.2, help="share of ids held out for validation, in [0, 1) (default 0.2)")
    d.add_argument("--formats", default=None, help="comma list of swift,internvl,llamafactory,hf (default: all)")
    d.add_argument("--unique-summaries", action="store_true", help="skip rows repeating an earlier summary text")
    r = p.add_argument_group("scale")
    r.add_argument("-j", "--workers", type=number(int, 0, what="must be >= 0 (0: decode in this process)"),
                   default=None, help="decoder processes (default: CPU count; 0: inline)")
    r.add_argument("--shard", default="0/1", help="i/N: this node's share of the rows")
    r.add_argument("--cache-dir", help="frame cache (default: $IVL3_HOME/cache/frames)")
    r.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..convert.api import ConvertError, run_convert
    from ..convert.runner import default_workers
    from ..shared.errors import InputError

    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None
    try:
        result = run_convert(
            args.inputs, args.out, num_frames=args.num_frames, sampling=args.sampling, fps=args.fps,
            val_fraction=args.val_fraction, prompt=args.prompt, image_format=args.image_format,
            quality=args.quality, max_short_side=args.max_short_side, frame_size=args.frame_size,
            video_root=args.video_root,
            source=args.source, workers=default_workers() if args.workers is None else args.workers,
            shard=_shard(args.shard), cache_dir=args.cache_dir, formats=formats, decoder=args.decoder,
            unique_summaries=args.unique_summaries, progress=not args.no_progress and sys.stderr.isatty(),
            video_key=args.video_key, summary_key=args.summary_key, id_key=args.id_key,
            start_key=args.start_key, end_key=args.end_key, frames_fps=args.frames_fps)
    except ConvertError as exc:
        if getattr(exc, "result", None) is not None:  # nothing converted: say why for each row, then fail
            _report(exc.result)
        raise UserError(str(exc)) from None
    except InputError as exc:  # a named file, row or option
        raise UserError(str(exc)) from None
    except (ValueError, KeyError) as exc:  # e.g. an unknown --prompt (KeyError quotes its message)
        raise UserError(str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)) from None
    if not result.complete:
        print(f"shard {args.shard} done ({result.decoded} decoded, {result.cache_hits} from cache, "
              f"{len(result.skipped)} skipped); the dataset files are written when the last shard finishes")
        _report(result)
        return 1 if result.skipped else 0
    print(f"{result.out_dir}: {result.converted} converted ({result.decoded} decoded, {result.cache_hits} from "
          f"cache, {result.resumed} resumed), {len(result.skipped)} skipped")
    _report(result)
    return 1 if result.skipped else 0


def _report(result) -> None:
    """Skipped rows, repaired cache entries and warnings on stderr (all of them also in report.json)."""
    import sys

    for r in result.repaired:
        print(f"  cache: {r['id']}: {r['reason']}; decoded again", file=sys.stderr)
    for w in result.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    for s in result.skipped[:20]:
        print(f"  skipped {s['file']}:{s['row']} ({s['id'] or s['video']}): {s['reason']}", file=sys.stderr)
    if len(result.skipped) > 20:
        print(f"  ... {len(result.skipped) - 20} more in {result.out_dir / 'skipped.jsonl'}", file=sys.stderr)
