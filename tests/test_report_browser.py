"""The HTML report rendered by a real headless Chromium: frames decode, scores show, sorting works."""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from swift_cli import convert_demo_subset

from ivl3_plugin.metric.evaluation import evaluate_predictions
from ivl3_plugin.metric.predictions import Prediction
from ivl3_plugin.metric.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: run scripts/install_chromium.sh "
                                                          "(Debian package `chromium`)")

# Runs in the page after load: records what decoded, clicks the ROUGE-L sort twice, filters by text.
TEST_JS = """
<script>
window.addEventListener('load', () => {
  const b = document.body, ids = () => [...document.querySelectorAll('#items .item')].map(e => e.dataset.id).join(',');
  const imgs = [...document.querySelectorAll('img.frame')];
  b.dataset.testFrames = imgs.length;
  b.dataset.testFramesDecoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  b.dataset.testInitial = ids();
  const btn = document.querySelector('button[data-sort="rougeL"]');
  btn.click(); b.dataset.testAsc = ids(); b.dataset.testAscLabel = btn.textContent.trim();
  btn.click(); b.dataset.testDesc = ids();
  document.querySelector('button[data-sort="delta"]').click(); b.dataset.testDelta = ids();
  const f = document.getElementById('filter');
  f.value = 'falling'; f.dispatchEvent(new Event('input'));
  b.dataset.testVisible = [...document.querySelectorAll('#items .item')].filter(e => e.offsetParent !== null)
    .map(e => e.dataset.id).join(',');
});
</script>
"""


def chromium(*args, tmp: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
            "--hide-scrollbars", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, demo_annotations):
    """Four bundled videos converted to 3 frames, a fine-tuned-like prediction set and a worse baseline."""
    tmp = tmp_path_factory.mktemp("report")
    train = convert_demo_subset(demo_annotations, tmp, count=4, num_frames=3)
    ds = [json.loads(l) for l in train.read_text().splitlines()]
    cut = [2, 4, 6, 100]  # increasingly complete predictions -> distinct scores
    preds = [Prediction(d["id"], [d["messages"][-1]["content"]],
                        " ".join(d["messages"][-1]["content"].split()[:c]), d["videos"][0]) for d, c in zip(ds, cut)]
    base = [Prediction(p.id, p.references, "A shape moves around.", p.frames) for p in preds]
    result = evaluate_predictions(preds, meteor=False)
    baseline = evaluate_predictions(base, meteor=False)
    html_path = write_report(result, tmp / "report.html", baseline=baseline)
    return tmp, html_path, result, baseline


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.body, self.items, self.frames, self.chips = {}, [], [], []
        self._chip = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "")
        if tag == "body":
            self.body = a
        elif tag == "article" and "item" in cls.split():
            self.items.append(a["data-id"])
        elif tag == "img" and "frame" in cls.split():
            self.frames.append(a.get("src", ""))
        elif tag == "span" and cls == "chip":
            self._chip = [a["data-metric"], ""]

    def handle_data(self, data):
        if self._chip is not None:
            self._chip[1] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._chip is not None and self._chip[1].strip():
            self.chips.append(tuple(self._chip))
            self._chip = None


def test_dom_after_clicks_shows_frames_scores_and_sorts(scored):
    tmp, html_path, result, baseline = scored
    page = tmp / "page_under_test.html"
    page.write_text(html_path.read_text().replace("</body>", TEST_JS + "</body>"))
    proc = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri(), tmp=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    body = dom.body
    assert body, proc.stdout[:2000]
    items = result["items"]
    # frames: 3 per sample, inlined JPEGs that the browser decoded
    assert int(body["data-test-frames"]) == 3 * len(items) == len(dom.frames)
    assert int(body["data-test-frames-decoded"]) == 3 * len(items)
    assert all(src.startswith("data:image/jpeg;base64,") for src in dom.frames)
    # scores: corpus cards and per-sample chips carry our numbers
    for key in ("bleu4", "rougeL", "cider"):
        card = re.search(rf'<div class="card" data-metric="{key}">.*?<div class="value">([0-9.]+)', proc.stdout)
        assert card and card.group(1) == f"{result['corpus'][key]:.1f}", key
    by_id = {it["id"]: it for it in items}
    rouge_chips = [text for metric, text in dom.chips if metric == "rougeL"]
    assert len(rouge_chips) == len(items)
    assert sorted(rouge_chips) == sorted(f"ROUGE-L {it['scores']['rougeL']:.1f}" + _delta(it, baseline, "rougeL")
                                         for it in items)

    def order(key, reverse=False):
        idx = {it["id"]: i for i, it in enumerate(items)}
        return ",".join(sorted(by_id, key=lambda i: ((-1 if reverse else 1) * key(by_id[i]), idx[i])))

    # initial order: worst CIDEr-D first; then ROUGE-L ascending, then descending after a second click
    assert body["data-test-initial"] == order(lambda it: it["scores"]["cider"])
    assert body["data-test-asc"] == order(lambda it: it["scores"]["rougeL"])
    assert "worst first" in body["data-test-asc-label"]
    assert body["data-test-desc"] == order(lambda it: it["scores"]["rougeL"], reverse=True)
    assert body["data-test-desc"] != body["data-test-asc"]
    base_cider = {it["id"]: it["scores"]["cider"] for it in baseline["items"]}
    assert body["data-test-delta"] == order(lambda it: it["scores"]["cider"] - base_cider[it["id"]])
    assert body["data-test-visible"] == ",".join(i for i in body["data-test-delta"].split(",") if "falling" in i)


def _delta(item, baseline, key):
    b = {it["id"]: it for it in baseline["items"]}[item["id"]]["scores"][key]
    return f"{item['scores'][key] - b:+.1f}" if item["scores"][key] != b else "+0.0"


def test_screenshot_renders(scored):
    tmp, html_path, _, _ = scored
    shot = tmp / "report.png"
    proc = chromium("--window-size=1280,1400", f"--screenshot={shot}", html_path.as_uri(), tmp=tmp)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1400)
    assert len(data) > 30_000  # a blank page compresses to a few kB; frames and text do not


# Ids and predictions that would end or re-open the page's <script> elements if embedded raw: the report must
# show them as text, its data block must parse, and its sort script must still run.
HOSTILE = [("a<!--<script>", "<!--<script> a red circle moves right"),
           ("b</script><script>window.ivl3Pwned=1</script>", "a blue square </script> falls down <!--"),
           ("c&amp;\u2028<b>x</b>", "a green triangle rises to the top &lt;end&gt;")]
HOSTILE_JS = """
<script>
window.addEventListener('load', () => {
  const b = document.body, ids = () => [...document.querySelectorAll('#items .item')].map(e => e.dataset.id);
  b.dataset.testPwned = String(window.ivl3Pwned === 1);
  b.dataset.testSorter = String(typeof window.ivl3SortBy);
  b.dataset.testData = JSON.stringify(JSON.parse(document.getElementById('ivl3-data').textContent).items.map(i => i.id));
  document.querySelector('button[data-sort="rougeL"]').click(); b.dataset.testAsc = JSON.stringify(ids());
  document.querySelector('button[data-sort="rougeL"]').click(); b.dataset.testDesc = JSON.stringify(ids());
  b.dataset.testPreds = JSON.stringify([...document.querySelectorAll('#items .item .pred')].map(e => e.textContent));
});
</script>
"""


def test_script_like_text_in_ids_and_predictions_cannot_break_the_page(tmp_path):
    refs = {"a": "A red circle moves from left to right.", "b": "A blue square falls from the top to the bottom.",
            "c": "A green triangle rises from the bottom to the top."}
    preds = [Prediction(i, [refs[i[0]]], p, []) for i, p in HOSTILE]
    result = evaluate_predictions(preds, meteor=False)
    html_path = write_report(result, tmp_path / "hostile.html")
    page = tmp_path / "hostile_under_test.html"
    page.write_text(html_path.read_text().replace("</body>", HOSTILE_JS + "</body>"))
    proc = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri(), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    body = dom.body
    assert body.get("data-test-pwned") == "false"  # no injected script ran
    assert body.get("data-test-sorter") == "function"  # the report's own script did
    assert json.loads(body["data-test-data"]) == [i for i, _ in HOSTILE]  # the data block round-trips
    rouge = {it["id"]: it["scores"]["rougeL"] for it in result["items"]}
    order = [i for i, _ in HOSTILE]
    assert json.loads(body["data-test-asc"]) == sorted(order, key=lambda i: (rouge[i], order.index(i)))
    assert json.loads(body["data-test-desc"]) == sorted(order, key=lambda i: (-rouge[i], order.index(i)))
    shown = json.loads(body["data-test-preds"])
    assert sorted(shown) == sorted(p for _, p in HOSTILE)  # the text shows literally, as written
    assert dom.items and sorted(dom.items) == sorted(order)
