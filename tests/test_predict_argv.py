"""``swift infer`` command lines and result normalisation, without running swift."""
from __future__ import annotations

import pytest

from ivl3_plugin.hosts.swift.infer import PredictError, infer_argv, normalise_results


def _opt(argv, name):
    return argv[argv.index(name) + 1]


def test_full_model_argv():
    argv = infer_argv("/m/ckpt", "/d/val.jsonl", "/o/raw.jsonl", max_new_tokens=64)
    assert argv[1] == "infer" and isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert _opt(argv, "--model") == "/m/ckpt" and "--adapters" not in argv
    assert _opt(argv, "--template") == "ivl3_video"
    assert _opt(argv, "--val_dataset") == "/d/val.jsonl" and _opt(argv, "--result_path") == "/o/raw.jsonl"
    assert _opt(argv, "--custom_register_path") == "ivl3_plugin"
    assert _opt(argv, "--temperature") == "0" and _opt(argv, "--max_new_tokens") == "64"


def test_lora_argv_takes_adapters_and_may_omit_the_model():
    argv = infer_argv(None, "/d/val.jsonl", "/o/raw.jsonl", adapters=["/lora/checkpoint-10"])
    assert "--model" not in argv and _opt(argv, "--adapters") == "/lora/checkpoint-10"
    with pytest.raises(ValueError, match="model_dir"):
        infer_argv(None, "/d/val.jsonl", "/o/raw.jsonl")


def test_normalise_pairs_results_with_dataset_rows_by_position():
    rows = [{"id": f"v{i}", "messages": [{"role": "user", "content": "<video>\nSummarise."},
                                         {"role": "assistant", "content": f"ref {i}"}],
             "videos": [[f"/f/v{i}/0.jpg", f"/f/v{i}/1.jpg"]]} for i in range(3)]
    results = [{"response": f"pred {i}", "labels": f"ref {i}"} for i in range(3)]
    preds = normalise_results(results, rows, "raw.jsonl")
    assert [(p.id, p.references, p.prediction, p.frames) for p in preds] == [
        (f"v{i}", [f"ref {i}"], f"pred {i}", [f"/f/v{i}/0.jpg", f"/f/v{i}/1.jpg"]) for i in range(3)]
    with pytest.raises(PredictError, match="2 results for 3 dataset rows"):
        normalise_results(results[:2], rows, "raw.jsonl")
    with pytest.raises(PredictError, match="raw.jsonl:2: no 'response'"):
        normalise_results([results[0], {}, results[2]], rows, "raw.jsonl")
