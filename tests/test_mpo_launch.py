"""``ivl3 train <mpo recipe>`` launches ``swift rlhf`` (not ``swift sft``) with MPO's settings; inputs checked first."""
from __future__ import annotations

import json

import pytest

from ivl3_plugin.cli import main


@pytest.fixture()
def inputs(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"messages": [{"role": "user", "content": "<video>"},
                                              {"role": "assistant", "content": "A red circle moves right."}],
                                 "rejected_response": "A red circle moves left.", "videos": [["f1.jpg"]]}) + "\n")
    sft_rows = tmp_path / "train.jsonl"
    sft_rows.write_text(json.dumps({"messages": [{"role": "user", "content": "<video>"}],
                                    "videos": [["f1.jpg"]]}) + "\n")
    return model, pairs, sft_rows


def dry_argv(capsys, *argv):
    rc = main(["train", *argv, "--dry-run"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return [l[2:] for l in out.out.split("argv:\n")[1].split("command:")[0].splitlines()]


def flag_values(argv, name):
    i = argv.index(name) + 1
    out = []
    while i < len(argv) and not argv[i].startswith("--"):
        out.append(argv[i])
        i += 1
    return out


@pytest.mark.parametrize("recipe, tuner, lr", [("internvl3-8b-mpo", "lora", "1e-05"),
                                               ("internvl3-8b-mpo-full", "full", "5e-06")])
def test_mpo_recipe_launches_swift_rlhf_with_mpo_losses(capsys, inputs, recipe, tuner, lr):
    model, pairs, _ = inputs
    argv = dry_argv(capsys, recipe, f"model={model}", f"dataset=[{pairs}]")
    command = argv[1] if argv[1] != "-m" else argv[3]
    assert command == "rlhf"
    assert flag_values(argv, "--rlhf_type") == ["dpo"]
    assert flag_values(argv, "--loss_type") == ["sigmoid", "bco_pair"]
    assert flag_values(argv, "--loss_weights") == ["0.8", "0.2"] and flag_values(argv, "--rpo_alpha") == ["1.0"]
    assert flag_values(argv, "--tuner_type") == [tuner] and flag_values(argv, "--learning_rate") == [lr]
    assert "--ref_model" not in argv  # LoRA: base model is the reference; full: ms-swift loads `model` again
    # not ivl3_compile (compiled layers are not verified under swift rlhf), but the attention skips padding:
    # chosen and rejected differ in length (tests/test_mpo_swift_e2e.py: the same losses)
    assert flag_values(argv, "--callbacks") == ["ivl3_skip_padding"]


def test_sft_recipe_still_launches_swift_sft(capsys, inputs):
    model, _, sft_rows = inputs
    argv = dry_argv(capsys, "internvl3-8b-lora", f"model={model}", f"dataset=[{sft_rows}]")
    assert "sft" in argv[1:4] and "rlhf" not in argv and "--rlhf_type" not in argv


@pytest.mark.parametrize("dataset, message", [
    (None, "pass dataset=PAIRS.jsonl (preference rows"),
    ("sft", "has no 'rejected_response' in its first row"),
])
def test_mpo_recipe_needs_a_pairs_file(capsys, inputs, dataset, message):
    model, _, sft_rows = inputs
    extra = [] if dataset is None else [f"dataset=[{sft_rows}]"]
    assert main(["train", "internvl3-8b-mpo", f"model={model}", *extra, "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_a_typo_in_an_rlhf_key_is_named(capsys, inputs):
    model, pairs, _ = inputs
    assert main(["train", "internvl3-8b-mpo", f"model={model}", f"dataset=[{pairs}]", "rpo_alph=1",
                 "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "'rpo_alph': not an argument of `swift rlhf`" in err and "rpo_alpha" in err


def test_stage_metadata_must_match_rlhf_type(tmp_path):
    from ivl3_plugin.recipe.config import load_recipe, validate
    from ivl3_plugin.resources import recipes_dir

    text = (recipes_dir() / "internvl3-8b-mpo.yaml").read_text().replace("rlhf_type: dpo\n", "")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    problems = validate(load_recipe(bad))
    assert any("metadata field 'stage' is 'mpo'" in p and "rlhf_type: dpo" in p for p in problems)
