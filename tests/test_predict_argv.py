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


def test_sampling_argv_passes_temperature_and_seed_greedy_stays_as_before():
    greedy = infer_argv("/m", "/d/val.jsonl", "/o/raw.jsonl")
    assert _opt(greedy, "--temperature") == "0" and "--seed" not in greedy
    sampled = infer_argv("/m", "/d/val.jsonl", "/o/raw.jsonl", temperature=0.7, seed=5)
    assert _opt(sampled, "--temperature") == "0.7" and _opt(sampled, "--seed") == "5"
    with pytest.raises(ValueError, match="temperature"):
        infer_argv("/m", "/d/val.jsonl", "/o/raw.jsonl", temperature=-1)


def test_sampling_settings_are_checked():
    from ivl3_plugin.hosts.swift.infer import check_sampling

    check_sampling(1, 0.0, 0)
    check_sampling(3, 1.0, 7)
    with pytest.raises(PredictError, match="needs --temperature > 0"):
        check_sampling(3, 0.0, 0)
    with pytest.raises(PredictError, match="--num-samples must be >= 1"):
        check_sampling(0, 1.0, 0)


def test_normalise_groups_samples_into_candidates_of_their_row():
    rows = [{"id": f"v{i}", "messages": [{"role": "user", "content": "<video>\nSummarise."},
                                         {"role": "assistant", "content": f"ref {i}"}],
             "videos": [[f"/f/v{i}/0.jpg"]]} for i in range(2)]
    results = [{"response": f"pred {i}.{k}"} for i in range(2) for k in range(3)]
    preds = normalise_results(results, rows, "raw.jsonl", num_samples=3)
    assert [(p.id, p.prediction, p.candidates) for p in preds] == [
        ("v0", "pred 0.0", ["pred 0.0", "pred 0.1", "pred 0.2"]), ("v1", "pred 1.0", ["pred 1.0", "pred 1.1", "pred 1.2"])]
    assert preds[0].to_json()["candidates"] == ["pred 0.0", "pred 0.1", "pred 0.2"]
    assert "candidates" not in normalise_results(results[:2], rows, "raw.jsonl")[0].to_json()
    with pytest.raises(PredictError, match="5 results for 2 dataset rows x 3 samples"):
        normalise_results(results[:5], rows, "raw.jsonl", num_samples=3)


def test_sampled_predictions_file_stays_readable_by_load_predictions(tmp_path):
    from ivl3_plugin.metric.predictions import Prediction, load_predictions, write_predictions

    path = write_predictions([Prediction("a", ["ref"], "one", ["/f/0.jpg"], ["one", "two"])], tmp_path / "p.jsonl")
    (got,) = load_predictions(path)
    assert (got.prediction, got.candidates) == ("one", ["one", "two"])
    path.write_text('{"id": "a", "reference": "r", "prediction": "p", "candidates": "p"}\n')
    from ivl3_plugin.metric.predictions import PredictionsError

    with pytest.raises(PredictionsError, match="field 'candidates': expected a list of strings"):
        load_predictions(path)


def test_cli_refuses_several_samples_without_temperature(tmp_path, capsys):
    from ivl3_plugin.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    code = main(["predict", "--model", str(tmp_path), "--dataset", str(data), "--out", str(tmp_path / "p.jsonl"),
                 "--num-samples", "3"])
    assert code == 2 and "needs --temperature > 0" in capsys.readouterr().err


def test_the_llamafactory_host_refuses_a_sampling_request_naming_ms_swift():
    from ivl3_plugin.hosts import get_host
    from ivl3_plugin.hosts.protocol import HostError, PredictRequest

    request = PredictRequest("/m", "/d/train.jsonl", "/o/c.jsonl", num_samples=3, temperature=1.0, seed=2)
    with pytest.raises(HostError, match="predictions run through ms-swift"):
        get_host("llamafactory").predict(request)
