"""``write_report``: one self-contained HTML page to judge a fine-tune by its summaries.

Corpus scores on top (with the change against a baseline, e.g. the model
before fine-tuning); below, one card per sample: a strip of key frames
(inlined as base64 JPEG thumbnails, so the file can be mailed), reference(s)
vs prediction with matched words highlighted, per-sample scores, sortable
worst-first by any metric and filterable, by a few lines of inline JS.
"""
from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ..shared.atomic import check_writable_file, write_text_atomic
from . import METRIC_NAME
from .compare import compare
from .evaluation import LABELS, evaluate_predictions, ordered_keys
from .predictions import Prediction
from .scoring import PER_ITEM_KEYS, ScoreOptions
from .tokenize import coco_tokenize

ASSETS = Path(__file__).resolve().parent / "report_assets"
PRIMARY = "cider"
HEADLINE_CARDS = ("bleu4", "meteor", "rougeL", "cider")

Source = Union[str, Path, Sequence[Prediction], dict]


def thumbnail(path: str, height: int = 96, quality: int = 75) -> Optional[str]:
    """A ``data:`` URI of a small JPEG of the frame, or None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w = max(1, round(im.width * height / im.height))
            im = im.resize((w, height), Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=quality)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def key_frames(frames: List[str], k: int) -> List[str]:
    if len(frames) <= k:
        return list(frames)
    return [frames[round(i * (len(frames) - 1) / (k - 1))] for i in range(k)] if k > 1 else frames[:1]


def _scored(source: Source, options: Optional[ScoreOptions], metric: str) -> dict:
    if isinstance(source, dict) and "items" in source and "corpus" in source:
        return source
    return evaluate_predictions(source, options, metric=metric)


def _fmt(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.1f}"


def _delta(v: Optional[float], b: Optional[float]) -> str:
    if v is None or b is None:
        return ""
    d = v - b
    cls = "up" if d > 0 else "down" if d < 0 else ""
    return f'<span class="delta {cls}">{d:+.1f}</span>'


def _highlight(prediction: str, references: List[str]) -> str:
    ref_tokens = {t for r in references for t in coco_tokenize(r)}
    out = []
    for word in prediction.split():
        toks = coco_tokenize(word)
        cls = "hit" if toks and all(t in ref_tokens for t in toks) else "miss" if toks else ""
        out.append(f'<span class="{cls}">{html.escape(word)}</span>' if cls else html.escape(word))
    return " ".join(out) or '<span class="miss">(empty)</span>'


def _cards(corpus: dict, cmp: Optional[dict]) -> str:
    """Corpus cards; with a comparison the change is ours minus the baseline *on the common ids*."""
    cards = []
    base = cmp["corpus"] if cmp else None
    ours_c = cmp["predictions_corpus"] if cmp else corpus
    partial = bool(cmp) and not cmp["same_ids"]
    headline = [k for k in HEADLINE_CARDS if k in corpus] or ordered_keys(corpus)[:4]  # a plugin metric's own keys
    for k in headline:
        if k in corpus:
            d = _delta(ours_c.get(k), base.get(k)) if base else ""
            was = ""
            if base and k in base:
                was = (f'<div class="was">baseline {base[k]:.1f} on the {cmp["common"]} common samples '
                       f'(ours there {ours_c[k]:.1f})</div>' if partial else
                       f'<div class="was">baseline {base[k]:.1f}</div>')
            cards.append(f'<div class="card" data-metric="{html.escape(k)}"><div class="name">'
                         f'{html.escape(LABELS.get(k, k))}</div><div class="value">{corpus[k]:.1f}{d}</div>{was}</div>')
    rest = [k for k in ordered_keys(corpus) if k not in headline]
    head = "".join(f"<th>{html.escape(LABELS.get(k, k))}</th>" for k in rest)
    row = "".join(f'<td data-metric="{k}">{corpus[k]:.1f}{_delta(ours_c.get(k), base.get(k)) if base else ""}</td>'
                  for k in rest)
    return f'<div class="cards" id="corpus">{"".join(cards)}</div><table class="more"><tr>{head}</tr><tr>{row}</tr></table>'


def _item_html(idx: int, item: dict, base_item: Optional[dict], max_frames: int,
               pair: Optional[dict] = None, extras: Optional[Dict[str, str]] = None) -> str:
    """One sample's card; ``pair`` holds both sides' scores on the common ids (the deltas)."""
    chips = []
    for k in item_keys(item["scores"]):
        d = _delta(pair["predictions"].get(k), pair["baseline"].get(k)) if pair else ""
        chips.append(f'<span class="chip" data-metric="{html.escape(k)}">{html.escape(LABELS.get(k, k))} '
                     f'{_fmt(item["scores"][k])}{d}</span>')
    frames = []
    for f in key_frames(item.get("frames") or [], max_frames):
        uri = thumbnail(f)
        frames.append(f'<img class="frame" alt="{html.escape(Path(f).name)}" src="{uri}">' if uri else
                      f'<div class="missing" title="{html.escape(f)}">frame missing</div>')
    refs = "".join(f'<div class="ref">{html.escape(r)}</div>' for r in item["references"])
    rows = [f'<div class="label">reference{"s" if len(item["references"]) > 1 else ""}</div><div>{refs}</div>',
            f'<div class="label">prediction</div><div class="pred">{_highlight(item["prediction"], item["references"])}</div>']
    if base_item is not None:
        rows.append(f'<div class="label">baseline</div><div class="pred baseline">'
                    f'{_highlight(base_item["prediction"], base_item["references"])}</div>')
    for label, text in (extras or {}).items():
        rows.append(f'<div class="label">{html.escape(label)}</div><div class="extra">{html.escape(text)}</div>')
    return (f'<article class="item" data-idx="{idx}" data-id="{html.escape(item["id"])}">'
            f'<div class="head"><span class="id">{html.escape(item["id"])}</span>'
            f'<span class="chips">{"".join(chips)}</span></div>'
            f'<div class="frames">{"".join(frames)}</div><div class="texts">{"".join(rows)}</div></article>')


def item_keys(scores: dict) -> List[str]:
    """The per-sample scores shown: the headline ones of our metric, or every key of a plugin's."""
    return [k for k in PER_ITEM_KEYS if k in scores] or ordered_keys(scores)


def script_json(value) -> str:
    """JSON safe to embed in an HTML ``<script>`` element: ``<``, ``>``, ``&`` (and U+2028/2029) escaped as
    ``\\uXXXX``, so no text in an id or a prediction (``</script>``, ``<!--<script>``) ends or changes
    the element; ``JSON.parse`` reads the same value back."""
    text = json.dumps(value, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def render_report(result: dict, baseline: Optional[dict] = None, title: str = "ivl3 summary report",
                  max_frames: int = 6, comparison: Optional[dict] = None,
                  item_extras: Optional[Dict[str, Dict[str, str]]] = None, notes: Sequence[str] = ()) -> str:
    """The page; ``baseline`` is matched by id (:func:`~.compare.compare`, computed here unless given).

    ``item_extras`` adds labelled lines to a sample's card (by id) and ``notes`` lines under the cards:
    what a caller knows beyond the metric (the demo: which attributes each prediction got right).
    """
    if baseline is not None and comparison is None:
        comparison = compare(result, baseline)
    base_by_id = {it["id"]: it for it in baseline["items"]} if baseline else {}
    pairs = comparison["items"] if comparison else {}
    items = result["items"]
    first = items[0]["scores"] if items else {}
    primary = next((k for k in (PRIMARY, "rougeL") if k in first), next(iter(item_keys(first)), PRIMARY))
    data = {"primary": primary, "items": []}
    for it in items:
        p = pairs.get(it["id"])
        data["items"].append({"id": it["id"], "scores": it["scores"],
                              "delta": (p["predictions"][primary] - p["baseline"][primary]) if p else None})
    # worst first by the primary metric even before the script runs
    order = sorted(range(len(items)), key=lambda i: (items[i]["scores"].get(primary, 0.0), i))
    sort_keys = item_keys(first) + (["delta"] if baseline else [])
    label = {k: html.escape(LABELS.get(k, k)) for k in sort_keys}
    buttons = "".join(f'<button data-sort="{html.escape(k)}">{"Δ " + label[primary] if k == "delta" else label[k]}'
                      f' <span class="dir"></span></button>' for k in sort_keys)
    sub = [f"{result['num_items']} samples", f"scores ×100, tokenize={result['options']['tokenize']}"]
    if result.get("source"):
        sub.insert(0, html.escape(str(result["source"])))
    if baseline:
        sub.append(f"baseline: {html.escape(str(baseline.get('source') or 'given'))} "
                   f"({len(base_by_id)} samples, {comparison['common']} matched by id)")
    sub.append(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    warnings = comparison["warnings"] if comparison else []
    page_notes = "".join(f'<div class="warning">warning: {html.escape(n)}</div>' for n in warnings)
    page_notes += "".join(f"<div>{html.escape(n)}</div>" for n in [*result.get("notes", []), *notes])
    body = "".join(_item_html(i, items[i], base_by_id.get(items[i]["id"]), max_frames, pairs.get(items[i]["id"]),
                              (item_extras or {}).get(items[i]["id"])) for i in order)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{(ASSETS / "report.css").read_text()}</style></head>
<body data-sort-key="{primary}" data-sort-dir="asc">
<header><h1>{html.escape(title)}</h1><div class="sub">{" · ".join(sub)}</div></header>
{_cards(result["corpus"], comparison)}
<div class="notes">{page_notes}</div>
<div class="controls"><span class="sub">sort:</span>{buttons}
<input id="filter" type="search" placeholder="filter by id or text">
<span class="sub legend"><span class="hit">word in a reference</span> <span class="miss">word in none</span></span></div>
<main id="items">{body}</main>
<script type="application/json" id="ivl3-data">{script_json(data)}</script>
<script>{(ASSETS / "report.js").read_text()}</script>
</body></html>
"""


def write_report(predictions: Source, out_html: Union[str, Path], baseline: Optional[Source] = None,
                 options: Optional[ScoreOptions] = None, title: str = "ivl3 summary report",
                 max_frames: int = 6, metric: str = METRIC_NAME, comparison: Optional[dict] = None,
                 item_extras: Optional[Dict[str, Dict[str, str]]] = None, notes: Sequence[str] = ()) -> Path:
    """Score ``predictions`` (a file, a list of :class:`Prediction`, or ``evaluate_predictions`` output) with the
    registered metric ``metric`` and write the HTML page; ``baseline`` adds a before/after comparison matched by id
    (no common id: :class:`MetricError`; different id sets: both scored on the common ids, with a warning)."""
    check_writable_file(out_html, "report")
    result = _scored(predictions, options, metric)
    base = _scored(baseline, options, metric) if baseline is not None else None
    if base is not None and comparison is None:
        comparison = compare(result, base, options, metric)
    return write_text_atomic(out_html, render_report(result, base, title, max_frames, comparison, item_extras, notes))
