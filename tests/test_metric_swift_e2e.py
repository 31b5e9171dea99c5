"""``swift sft --eval_metric ivl3_summary --predict_with_generate true`` logs our metric keys."""
from __future__ import annotations

import json

import pytest

from swift_cli import convert_demo_subset, run_swift, swift_env

OUR_KEYS = ("eval_bleu4", "eval_rougeL", "eval_rougeLsum", "eval_cider")


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, demo_annotations):
    """Six bundled videos converted to 2 frames each (one split, used for train and eval)."""
    train = convert_demo_subset(demo_annotations, tmp_path_factory.mktemp("metric_e2e"), count=6, num_frames=2)
    assert len(train.read_text().splitlines()) == 6
    return train


@pytest.mark.e2e
def test_sft_logs_ivl3_summary_during_eval(tmp_path, tiny_model, small_dataset):
    out = tmp_path / "out"
    proc = run_swift("sft", [
        "--custom_register_path", "ivl3_plugin",
        "--model", tiny_model, "--template", "ivl3_video",
        "--dataset", small_dataset, "--val_dataset", small_dataset, "--split_dataset_ratio", "0",
        "--tuner_type", "full", "--torch_dtype", "float32", "--max_steps", "2", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "3", "--logging_steps", "1",
        "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
        "--predict_with_generate", "true", "--eval_metric", "ivl3_summary", "--max_new_tokens", "8",
        "--gradient_checkpointing", "false", "--dataloader_num_workers", "0", "--report_to", "none",
        "--seed", "0", "--output_dir", out,
    ], cwd=tmp_path, env=swift_env(IVL3_METRIC_OPTIONS='{"meteor": false}'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rows = [json.loads(line) for log in out.rglob("logging.jsonl") for line in log.read_text().splitlines()]
    evals = [r for r in rows if any(k in r for k in OUR_KEYS)]
    assert evals, f"no eval row with our keys in logging.jsonl: {rows}"
    for key in OUR_KEYS:
        value = evals[-1][key]
        assert isinstance(value, float) and 0.0 <= value <= 1000.0, (key, value)
    assert "eval_meteor" not in evals[-1]  # switched off through $IVL3_METRIC_OPTIONS
    # swift's default metric_for_best_model ('rouge-l', its jieba metric) is pointed at our rougeL
    state = json.loads(sorted(out.rglob("trainer_state.json"))[-1].read_text())
    assert state["best_metric"] == pytest.approx(evals[-1]["eval_rougeL"])
    # the generated responses swift scored are the ones it wrote to predict.jsonl
    preds = [json.loads(l) for p in out.rglob("predict.jsonl") for l in p.read_text().splitlines()]
    assert len(preds) == 6 and all("response" in p for p in preds)
