"""Meta-test: every registry has a reader, proven by behaviour.

One throwaway distribution implements every hook and is really pip-installed (``--target``, found
through the ``ivl3_plugin`` entry-point group like any third-party plugin).  For each kind in
``ivl3_plugin.plugins.kinds.KINDS`` a test below shows that what the plugin registered changes what
the product does: the registered source is the one ``ivl3 convert`` reads with, the tiler the one
the plugin's template tiles with, the metric the one ``ivl3 eval/report --metric`` scores with, the
recipe folder the one ``ivl3 train`` finds, the template and the dataset the ones ms-swift gets.
A kind added to KINDS without such a test fails :func:`test_every_kind_has_a_behaviour_test`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ivl3_plugin.plugins.kinds import KINDS

PY = sys.executable
TILE_VALUE = 0.25  # every pixel the plugin's tiler returns

PLUGIN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "ivl3-meta-plugin"
        version = "1.0.0"

        [project.entry-points.ivl3_plugin]
        meta = "ivl3_meta.plugin"

        [tool.setuptools]
        packages = ["ivl3_meta"]

        [tool.setuptools.package-data]
        ivl3_meta = ["prompts/*.j2", "recipes/*.yaml", "data/swift/*.jsonl"]
    """,
    "ivl3_meta/__init__.py": "",
    "ivl3_meta/prompts/meta_prompt.j2": "Describe it, meta style.\n",
    "ivl3_meta/recipes/meta-recipe.yaml": """
        #@ivl3 description: the meta plugin's recipe
        model: ivl3-tiny
        template: meta_video
        dataset: [meta-set]
        tuner_type: full
        learning_rate: 0.0123
        max_steps: 2
        output_dir: out/meta
    """,
    "ivl3_meta/data/swift/train.jsonl": "".join(
        json.dumps({"id": f"m{i}", "messages": [{"role": "user", "content": "hi"},
                                                {"role": "assistant", "content": f"meta answer {i}"}]}) + "\n"
        for i in range(3)),
    "ivl3_meta/plugin.py": '''
        from pathlib import Path

        import datasets
        import evaluate

        from ivl3_plugin.api import DatasetSource, DatasetSpec, SourceRow, TemplateSpec, hookimpl

        HERE = Path(__file__).parent


        class MetaRows(DatasetSource):
            """*.metarows: one `video|summary` per line."""

            def sniff(self, path):
                return Path(path).suffix == ".metarows"

            def read(self, path, **_):
                for n, line in enumerate(Path(path).read_text().splitlines(), 1):
                    video, summary = line.split("|")
                    yield SourceRow(file=str(path), row=n, video=video, summary="META " + summary, id=f"meta{n}")


        class Tiles:
            def __init__(self, pixel_values):
                self.pixel_values = pixel_values


        def meta_tiler(image, *, tile_size, max_tiles, thumbnail, dtype=None):
            import torch

            return Tiles(torch.full((1, 3, tile_size, tile_size), 0.25, dtype=dtype or torch.float32))


        class MetaLength(evaluate.Metric):
            def _info(self):
                return evaluate.MetricInfo(description="mean prediction length", citation="", inputs_description="",
                                           features=datasets.Features({"predictions": datasets.Value("string"),
                                                                       "references": datasets.Sequence(datasets.Value("string"))}))

            def _compute(self, predictions, references):
                return {"meta_len": sum(len(p) for p in predictions) / max(1, len(predictions))}


        @hookimpl
        def register_dataset_sources(register):
            register("meta-rows", MetaRows())


        @hookimpl
        def register_datasets(register):
            register("meta-set", DatasetSpec(path=HERE / "data", splits={"train": "swift/train.jsonl"}))


        @hookimpl
        def register_preprocessors(register):
            register("meta_tiler", meta_tiler)


        @hookimpl
        def register_templates(register):
            register("meta_video", TemplateSpec(name="meta_video", prompt="meta_prompt", prompt_dir=HERE / "prompts",
                                                preprocessor="meta_tiler"))


        @hookimpl
        def register_metrics(register):
            register("meta_len", MetaLength)


        @hookimpl
        def register_recipes(register):
            register("meta", HERE / "recipes")
    ''',
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("meta_src")
    for rel, text in PLUGIN.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    target = tmp_path_factory.mktemp("meta_site")
    proc = subprocess.run([PY, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                           "--target", str(target), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def run(args, site: Path, tmp: Path, timeout=600, **env):
    full = {**os.environ, "IVL3_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1", **env}
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), full.get("PYTHONPATH", "")) if p)
    full.pop("IVL3_BLOCK_PLUGINS", None)
    proc = subprocess.run([PY, *args], capture_output=True, text=True, env=full, timeout=timeout, cwd=tmp)
    return proc


def test_register_dataset_sources_is_read_by_ivl3_convert(installed, tmp_path, demo_videos):
    rows = tmp_path / "clips.metarows"
    rows.write_text("".join(f"{video}|{summary}\n" for _, video, summary in demo_videos[:2]))
    proc = run(["-m", "ivl3_plugin", "convert", str(rows), "-o", str(tmp_path / "out"), "--num-frames", "2",
                "--val-fraction", "0", "--workers", "0"], installed, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [json.loads(l) for l in (tmp_path / "out" / "swift" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == ["meta1", "meta2"]
    assert all(r["messages"][-1]["content"].startswith("META ") for r in out)  # the plugin's reading of the file


SWIFT_TEMPLATE = """
import json, sys
from swift import get_processor, get_template
from ivl3_plugin.hosts.swift.install import install
install()
proc = get_processor(sys.argv[1])
row = json.loads(open(sys.argv[2]).readline())
row["messages"][0]["content"] = "<video>"
t = get_template(proc, template_type="meta_video")
t.set_mode("train")
enc = t.encode(row)
pv = enc["pixel_values"]
print(json.dumps({"text": t.safe_decode(enc["input_ids"]), "min": float(pv.min()), "max": float(pv.max()),
                  "tiles": int(pv.shape[0])}))
"""


@pytest.fixture(scope="module")
def converted_row(tmp_path_factory, demo_annotations):
    from swift_cli import convert_demo_subset

    return convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("meta_conv"), 1, 2)


@pytest.fixture(scope="module")
def meta_encoding(installed, tmp_path_factory, tiny_model, converted_row) -> dict:
    """One converted row encoded by ms-swift with the plugin's template ``meta_video``."""
    tmp = tmp_path_factory.mktemp("meta_enc")
    script = tmp / "enc.py"
    script.write_text(SWIFT_TEMPLATE)
    proc = run([str(script), str(tiny_model), str(converted_row)], installed, tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_register_templates_is_read_by_the_swift_host(meta_encoding):
    assert "Describe it, meta style." in meta_encoding["text"]  # the plugin template's own prompt file
    assert "Frame1: <img>" in meta_encoding["text"] and "Frame2: <img>" in meta_encoding["text"]


def test_register_preprocessors_is_read_by_the_template_that_names_it(meta_encoding):
    assert meta_encoding["tiles"] == 2  # two frames, one tile each
    assert meta_encoding["min"] == meta_encoding["max"] == TILE_VALUE  # its tiler's pixels, not InternVL's


def test_register_datasets_is_read_by_the_swift_host(installed, tmp_path):
    code = ("from ivl3_plugin.hosts.swift.install import install; install(); "
            "from swift.dataset import load_dataset; train, _ = load_dataset(['meta-set']); "
            "print([m[-1]['content'] for m in train['messages']])")
    proc = run(["-c", code], installed, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "['meta answer 0', 'meta answer 1', 'meta answer 2']" in proc.stdout


def test_register_metrics_is_read_by_ivl3_eval_and_report(installed, tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": str(i), "reference": "a b", "prediction": p}) + "\n"
                             for i, p in enumerate(["abcd", "ab"])))
    proc = run(["-m", "ivl3_plugin", "eval", str(preds), "--metric", "meta_len", "--out", str(tmp_path / "s.json")],
               installed, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["metric"] == "meta_len" and scores["corpus"] == {"meta_len": 3.0}
    assert [it["scores"] for it in scores["items"]] == [{"meta_len": 4.0}, {"meta_len": 2.0}]
    proc = run(["-m", "ivl3_plugin", "report", str(preds), "--metric", "meta_len", "--out", str(tmp_path / "r.html")],
               installed, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (tmp_path / "r.html").read_text()
    assert 'data-sort="meta_len"' in page and "CIDEr" not in page
    proc = run(["-m", "ivl3_plugin", "eval", str(preds), "--metric", "no_such_metric"], installed, tmp_path)
    assert proc.returncode == 2 and "no metric named 'no_such_metric'" in proc.stderr and "meta_len" in proc.stderr


def test_register_recipes_is_read_by_ivl3_train(installed, tmp_path):
    proc = run(["-m", "ivl3_plugin", "train", "meta-recipe", "--dry-run"], installed, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--learning_rate\n  0.0123" in proc.stdout and "--template\n  meta_video" in proc.stdout
    listing = run(["-m", "ivl3_plugin", "train", "--list"], installed, tmp_path)
    assert "meta-recipe" in listing.stdout and "the meta plugin's recipe" in listing.stdout


BEHAVIOUR = {
    "register_dataset_sources": test_register_dataset_sources_is_read_by_ivl3_convert,
    "register_datasets": test_register_datasets_is_read_by_the_swift_host,
    "register_preprocessors": test_register_preprocessors_is_read_by_the_template_that_names_it,
    "register_templates": test_register_templates_is_read_by_the_swift_host,
    "register_metrics": test_register_metrics_is_read_by_ivl3_eval_and_report,
    "register_recipes": test_register_recipes_is_read_by_ivl3_train,
}


def test_every_kind_has_a_behaviour_test():
    assert set(BEHAVIOUR) == {k.hook for k in KINDS}
    for kind in KINDS:  # the plugin above implements the hook, so the behaviour test exercises it
        assert f"def {kind.hook}(register)" in PLUGIN["ivl3_meta/plugin.py"]
