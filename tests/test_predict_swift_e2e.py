"""``predict()`` drives the real ``swift infer`` (full model and LoRA adapters) into our predictions format."""
from __future__ import annotations

import json

import pytest

from swift_cli import convert_demo_subset, run_swift, swift_env
from ivl3_plugin.hosts.swift.infer import predict
from ivl3_plugin.metric.predictions import load_predictions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, demo_annotations):
    return convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("predict"), count=3, num_frames=2)


def _check(preds_path, dataset):
    rows = [json.loads(l) for l in dataset.read_text().splitlines()]
    preds = load_predictions(preds_path)
    assert [p.id for p in preds] == [r["id"] for r in rows]
    assert [p.references for p in preds] == [[r["messages"][-1]["content"]] for r in rows]
    assert [p.frames for p in preds] == [r["videos"][0] for r in rows]
    assert all(isinstance(p.prediction, str) for p in preds)
    return preds


@pytest.mark.e2e
def test_predict_full_model_then_report(tmp_path, tiny_model, dataset):
    out = predict(tiny_model, dataset, tmp_path / "preds.jsonl", max_new_tokens=6)
    preds = _check(out, dataset)
    assert any(p.prediction for p in preds)  # the random tiny model still emits tokens
    raw = [json.loads(l) for l in (tmp_path / "preds.swift_infer.jsonl").read_text().splitlines()]
    assert [r["response"] for r in raw] == [p.prediction for p in preds]
    from ivl3_plugin.metric.report import write_report

    page = write_report(out, tmp_path / "r.html", options=None).read_text()
    assert page.count("data:image/jpeg;base64,") == 2 * len(preds)


@pytest.mark.e2e
def test_predict_with_lora_adapters_only(tmp_path, tiny_model, dataset):
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin", "--model", tiny_model, "--template", "ivl3_video",
        "--dataset", dataset, "--split_dataset_ratio", "0", "--tuner_type", "lora", "--torch_dtype", "float32",
        "--max_steps", "1", "--per_device_train_batch_size", "1", "--save_strategy", "steps", "--save_steps", "1",
        "--eval_strategy", "no", "--gradient_checkpointing", "false", "--dataloader_num_workers", "0",
        "--report_to", "none", "--output_dir", tmp_path / "lora",
    ], cwd=tmp_path, env=swift_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    ckpt = sorted((tmp_path / "lora").rglob("checkpoint-1"))[-1]
    assert (ckpt / "adapter_config.json").is_file()
    out = predict(None, dataset, tmp_path / "lora_preds.jsonl", adapters=ckpt, max_new_tokens=4)
    _check(out, dataset)

    # the checkpoint given as --model (swift itself fails on that): recognised and passed as the adapter,
    # with progress lines while swift runs (stderr is not a terminal here: plain lines, no bar)
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "predict", "--model", str(ckpt), "--dataset",
                           str(dataset), "--out", str(tmp_path / "cli_preds.jsonl"), "--max-new-tokens", "4",
                           "--max-batch-size", "1"], capture_output=True, text=True, timeout=900, env=swift_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"ivl3 predict: {ckpt} is a LoRA adapter checkpoint: passed to swift as --adapters" in proc.stderr
    n = len(dataset.read_text().splitlines())
    progress = [l for l in proc.stderr.splitlines() if l.startswith("predict: ")]
    assert progress[0].startswith(f"predict: 0/{n} rows") and progress[-1].startswith(f"predict: {n}/{n} rows (100%)")
    assert "Traceback" not in proc.stderr and (tmp_path / "cli_preds.swift_infer.log").is_file()
    _check(tmp_path / "cli_preds.jsonl", dataset)


@pytest.mark.e2e
def test_predict_keeps_every_reference_of_a_video(tmp_path, tiny_model, demo_annotations):
    """A video with several summaries: swift infers its val row (with the extra ``references`` column) once,
    and the predictions file keeps every reference for scoring."""
    from ivl3_plugin.convert import run_convert, split_for_id

    rows = [json.loads(l) for l in demo_annotations.read_text().splitlines() if l.strip()][:2]
    ids = [next(f"multi{k}-{n}" for n in range(500) if split_for_id(f"multi{k}-{n}", 0.5) == "val") for k in range(2)]
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps({"id": i, "video": str(demo_annotations.parent / r["video"]),
                                       "summary": [r["summary"], "Another way to say it."]}) + "\n"
                           for i, r in zip(ids, rows)))
    out = run_convert(ann, tmp_path / "data", num_frames=2, val_fraction=0.5, cache_dir=tmp_path / "cache",
                      formats=["swift"]).out_dir
    val = out / "swift" / "val.jsonl"
    assert [json.loads(l)["references"] for l in val.read_text().splitlines()] == \
        [[r["summary"], "Another way to say it."] for r in rows]
    preds = load_predictions(predict(tiny_model, val, tmp_path / "p.jsonl", max_new_tokens=4))
    assert [p.id for p in preds] == ids
    assert [p.references for p in preds] == [[r["summary"], "Another way to say it."] for r in rows]
