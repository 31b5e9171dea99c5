"""Preference pairs without swift: reading and matching inputs, scoring, selection, margins, formats, determinism."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivl3_plugin.preference.build import PairOptions, build_pairs
from ivl3_plugin.preference.formats import llamafactory_row, swift_row
from ivl3_plugin.preference.inputs import Item, PairsError, attach_candidates, read_candidates, read_dataset
from ivl3_plugin.preference.scoring import ScoredItem, parse_weights, score_items
from ivl3_plugin.preference.selection import Pair, select_pair, select_pairs

PROMPT = "<video>\nPlease provide a concise summary of this video in one sentence."
REFS = ["A red circle moves right.", "A blue square spins slowly.", "A green triangle falls down."]


def _dataset(tmp_path: Path, refs=REFS, frames_per_row=2, system=None) -> Path:
    rows = []
    for i, ref in enumerate(refs):
        frames = []
        for k in range(frames_per_row):
            f = tmp_path / "frames" / f"v{i}" / f"{k}.jpg"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"jpg")
            frames.append(str(f))
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": PROMPT}, {"role": "assistant", "content": ref}]
        rows.append({"id": f"v{i}", "messages": messages, "videos": [frames], "timestamps": [[0.5, 1.5][:frames_per_row]]})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _candidates(tmp_path: Path, by_id: dict, name="cands.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": i, "reference": "r", "prediction": (c or [""])[0], "candidates": c})
                            + "\n" for i, c in by_id.items()))
    return path


def _scored(scores, candidates=None, reference="the reference", item_id="v0"):
    candidates = candidates or [f"candidate {k}" for k in range(len(scores))]
    item = Item("d.jsonl:1", item_id, {}, reference, [reference], candidates)
    return ScoredItem(item, list(scores), [{"s": s} for s in scores])


# --- selection ---------------------------------------------------------------------------------------------

def test_rejected_is_the_lowest_and_chosen_the_reference_or_the_best():
    pair = select_pair(_scored([40.0, 10.0, 25.0]))
    assert isinstance(pair, Pair) and (pair.chosen, pair.rejected, pair.rejected_index) == \
        ("the reference", "candidate 1", 1)
    best = select_pair(_scored([40.0, 10.0, 25.0]), chosen="best")
    assert (best.chosen, best.rejected, best.chosen_index) == ("candidate 0", "candidate 1", 0)


def test_margin_skips_rows_whose_candidates_score_alike():
    skip = select_pair(_scored([30.0, 28.5]), margin=2.0)
    assert skip.reason == "below_margin" and "differ by 1.50 < margin 2" in skip.detail
    assert isinstance(select_pair(_scored([30.0, 27.0]), margin=2.0), Pair)
    assert isinstance(select_pair(_scored([30.0, 28.0]), margin=2.0), Pair)  # exactly the margin is kept


def test_same_texts_give_no_pair():
    skip = select_pair(_scored([5.0, 1.0], candidates=["x", "The  reference"], reference="the reference"))
    assert skip.reason == "rejected_is_reference"
    skip = select_pair(_scored([3.0, 3.0], candidates=["same text", "same text"]), chosen="best")
    assert skip.reason == "chosen_equals_rejected"


def test_ties_are_broken_by_the_seed_per_id_independent_of_other_rows():
    def rejected(seed, item_id):
        return select_pair(_scored([1.0] * 8, item_id=item_id), seed=seed).rejected_index

    assert rejected(0, "v0") == rejected(0, "v0")
    assert len({rejected(seed, "v0") for seed in range(20)}) > 1  # the seed really decides
    rows = [_scored([1.0] * 8, item_id=f"v{i}") for i in range(5)]
    alone = [select_pair(r, seed=3).rejected_index for r in rows]
    together, _ = select_pairs(list(reversed(rows)), seed=3)
    assert [p.rejected_index for p in reversed(together)] == alone


# --- scoring -----------------------------------------------------------------------------------------------

def _items(cands):
    return [Item(f"d:{i + 1}", f"v{i}", {}, ref, [ref], list(c)) for i, (ref, c) in enumerate(zip(REFS, cands))]


def test_scores_rank_the_reference_words_first_with_the_default_mix():
    items = _items([[REFS[0], "A red circle moves.", "Nothing happens."], ["A blue square.", "Something green."],
                    ["A green triangle falls down.", "A triangle."]])
    scored, weights = score_items(items)
    assert weights == {"cider": 0.5, "rougeL": 0.5}
    s0 = scored[0].scores
    assert s0[0] > s0[1] > s0[2]
    assert scored[0].details[0]["rougeL"] == pytest.approx(100.0)
    assert s0[0] == pytest.approx(0.5 * scored[0].details[0]["cider"] + 0.5 * scored[0].details[0]["rougeL"])


def test_a_candidate_score_does_not_depend_on_how_many_candidates_other_rows_have():
    few = _items([["A red circle moves."], ["A blue square."], ["A triangle."]])
    many = _items([["A red circle moves.", "x", "y", "z"], ["A blue square."], ["A triangle.", "w"]])
    a, _ = score_items(few)
    b, _ = score_items(many)
    assert [s.scores[0] for s in a] == pytest.approx([s.scores[0] for s in b])


def test_weights_parse_and_unknown_keys_are_refused():
    assert parse_weights("cider=0.2, rougeL=0.8") == {"cider": 0.2, "rougeL": 0.8}
    assert parse_weights("rougeL") == {"rougeL": 1.0} and parse_weights(None) is None
    for bad in ("cider=x", "=1", "cider=0"):
        with pytest.raises(PairsError, match="--score"):
            parse_weights(bad)
    with pytest.raises(PairsError, match="names bleu9, which metric ivl3_summary does not give per item"):
        score_items(_items([["a"], ["b"], ["c"]]), weights={"bleu9": 1.0})
    scored, _ = score_items(_items([["A red circle."], ["b"], ["c"]]), weights={"rougeL": 1.0})
    assert scored[0].scores == [pytest.approx(scored[0].details[0]["rougeL"])]


def test_a_plugin_metric_scores_by_name(monkeypatch):
    from ivl3_plugin import hookimpl
    from ivl3_plugin.plugins import build, loader

    class WordOverlap:
        def __init__(self, **_):
            pass

        def add_batch(self, predictions, references):
            pass

        def compute(self, predictions, references):
            return {"overlap": sum(len(set(p.lower().split()) & set(r[0].lower().split()))
                                   for p, r in zip(predictions, references))}

    class Plugin:
        @hookimpl
        def register_metrics(register):
            register("word_overlap", WordOverlap)

    monkeypatch.setattr(loader, "_LOADED", build({"overlap": Plugin}, entry_points=False))
    scored, weights = score_items(_items([["A red circle moves right.", "A red dot.", "Blue."], ["b"], ["c"]]),
                                  metric="word_overlap")
    assert weights == {"overlap": 1.0} and scored[0].scores == [5.0, 2.0, 0.0]
    from ivl3_plugin.shared.errors import InputError

    with pytest.raises(InputError, match="no metric named 'word_overlapx'; known: ivl3_summary, word_overlap"):
        score_items(_items([["a"], ["b"], ["c"]]), metric="word_overlapx")


# --- inputs ------------------------------------------------------------------------------------------------

def test_bad_rows_are_reported_with_file_row_id_and_reason(tmp_path):
    path = _dataset(tmp_path)
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    Path(rows[0]["videos"][0][1]).unlink()  # a frame file gone
    rows[1]["messages"] = rows[1]["messages"][:1]  # no reference
    rows.append({"id": "v3", "messages": rows[2]["messages"], "videos": rows[2]["videos"]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cands = _candidates(tmp_path, {"v0": ["a"], "v1": ["b"], "v2": [], "v3": ["A green triangle.", "x"]})
    result = build_pairs(path, cands, tmp_path / "out")
    got = [(s.where, s.id, s.reason) for s in result.skipped]
    assert got == [(f"{path}:1", "v0", "missing_frames"), (f"{path}:2", "v1", "no_reference"),
                   (f"{path}:3", "v2", "no_candidates")]
    assert "1 of 2 frame files missing" in result.skipped[0].detail
    assert [p.scored.item.id for p in result.pairs] == ["v3"] and len(result.bad_input) == 3
    report = json.loads((tmp_path / "out" / "pairs.report.json").read_text())
    assert report["kept"] == 1 and report["skipped"] == 3 and report["rows"] == 4
    assert report["skipped_by_reason"] == {"missing_frames": 1, "no_candidates": 1, "no_reference": 1}
    assert report["skipped_rows"][1] == {"where": f"{path}:2", "id": "v1", "reason": "no_reference",
                                         "detail": result.skipped[1].detail}


def test_candidates_for_other_ids_are_an_error(tmp_path):
    path = _dataset(tmp_path)
    items, skipped, ids = read_dataset(path)
    with pytest.raises(PairsError, match=r"1 dataset id\(s\) have no candidates \(e.g. 'v2'\); 1 candidate id\(s\) "
                                         r"are not in the dataset \(e.g. 'zz'\)"):
        attach_candidates(items, skipped, ids, {"v0": ["a"], "v1": ["b"], "zz": ["c"]}, "c.jsonl")


def test_a_dataset_that_is_not_a_file_is_an_error(tmp_path):
    with pytest.raises(PairsError, match="not a file"):
        read_dataset(tmp_path)
    with pytest.raises(PairsError, match="no such file"):
        read_dataset(tmp_path / "missing.jsonl")


def test_a_one_prediction_file_gives_one_candidate_per_row(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "v0", "reference": "r", "prediction": "greedy"}\n')
    assert read_candidates(path) == {"v0": ["greedy"]}


# --- formats and the whole run -----------------------------------------------------------------------------

def test_rows_keep_the_prompt_and_every_frame_in_both_formats(tmp_path):
    path = _dataset(tmp_path, frames_per_row=2, system="You summarise videos.")
    cands = _candidates(tmp_path, {"v0": ["A red circle.", "Nothing."], "v1": ["A blue square spins.", "x"],
                                   "v2": ["A green triangle falls.", "A cat."]})
    result = build_pairs(path, cands, tmp_path / "out")
    src = [json.loads(l) for l in path.read_text().splitlines()]
    swift = [json.loads(l) for l in (tmp_path / "out" / "swift" / "pairs.jsonl").read_text().splitlines()]
    lf = json.loads((tmp_path / "out" / "llamafactory" / "pairs.json").read_text())
    assert swift[0] == {"id": "v0", "messages": [{"role": "system", "content": "You summarise videos."},
                                                 {"role": "user", "content": PROMPT},
                                                 {"role": "assistant", "content": REFS[0]}],
                        "rejected_response": "Nothing.", "videos": src[0]["videos"],
                        "timestamps": src[0]["timestamps"]}
    assert lf[0] == {"messages": [{"role": "user", "content": PROMPT}],
                     "chosen": {"role": "assistant", "content": REFS[0]},
                     "rejected": {"role": "assistant", "content": "Nothing."},
                     "videos": src[0]["videos"], "system": "You summarise videos."}
    assert [r["rejected_response"] for r in swift] == ["Nothing.", "x", "A cat."]
    info = json.loads((tmp_path / "out" / "llamafactory" / "dataset_info.json").read_text())
    assert info["ivl3_pairs"]["ranking"] is True and info["ivl3_pairs"]["columns"]["system"] == "system"
    assert swift_row(result.pairs[0]) == swift[0] and llamafactory_row(result.pairs[0]) == lf[0]


def test_the_same_seed_gives_the_same_files(tmp_path):
    path = _dataset(tmp_path)
    tied = {f"v{i}": [f"word{k}" for k in range(6)] for i in range(3)}  # all score 0: ties everywhere
    cands = _candidates(tmp_path, tied)

    def run(seed, name):
        build_pairs(path, cands, tmp_path / name, PairOptions(seed=seed))
        return (tmp_path / name / "swift" / "pairs.jsonl").read_text()

    assert run(1, "a") == run(1, "b")
    assert len({run(seed, f"s{seed}") for seed in range(8)}) > 1


def test_bad_options_are_refused(tmp_path):
    path = _dataset(tmp_path)
    cands = _candidates(tmp_path, {"v0": ["a"], "v1": ["b"], "v2": ["c"]})
    with pytest.raises(PairsError, match="--chosen"):
        build_pairs(path, cands, tmp_path / "o", PairOptions(chosen="worst"))
    with pytest.raises(PairsError, match="--margin"):
        build_pairs(path, cands, tmp_path / "o", PairOptions(margin=-1))
    (tmp_path / "file").write_text("")
    with pytest.raises(PairsError, match="not a folder"):
        build_pairs(path, cands, tmp_path / "file")


def test_candidates_with_image_markup_are_left_out_and_reported(tmp_path):
    """A barely trained model samples special tokens; as answer text `<IMG_CONTEXT>`/`</img>` would be read as
    image slots (swift rlhf then fails: more image tokens than frame features), so such candidates never pair."""
    data = _dataset(tmp_path)
    cands = _candidates(tmp_path, {"v0": ["A red circle moves left.", "noise <IMG_CONTEXT> more"],
                                   "v1": ["bad </img> text", "<img> again"],
                                   "v2": ["A green triangle falls down slowly.", "A cat sleeps."]})
    result = build_pairs(data, cands, tmp_path / "out")
    by_id = {p.scored.item.id: p for p in result.pairs}
    assert set(by_id) == {"v0", "v2"} and by_id["v0"].rejected == "A red circle moves left."
    (skip,) = result.skipped
    assert (skip.id, skip.reason) == ("v1", "candidates_all_markup") and "</img>" in skip.detail
    assert skip.where.endswith("train.jsonl:2")
    report = json.loads((tmp_path / "out" / "pairs.report.json").read_text())
    v2 = next(p for p in report["pairs"] if p["id"] == "v2")
    assert v2["rejected"] == "candidate 1"  # numbered as in the candidates file
    cands2 = _candidates(tmp_path, {"v0": ["A red circle moves left."], "v1": ["a", "b"],
                                    "v2": ["x <video>", "A green triangle falls down slowly.", "A cat sleeps."]},
                         name="cands2.jsonl")
    report = build_pairs(data, cands2, tmp_path / "out2").report
    assert next(p for p in report["pairs"] if p["id"] == "v2")["rejected"] == "candidate 2"
    report = json.loads((tmp_path / "out" / "pairs.report.json").read_text())
    assert report["candidates_dropped"] == [{"where": f"{data}:1", "id": "v0",
                                             "why": "candidate 1: contains image markup <IMG_CONTEXT>"}]
    rows = [json.loads(x) for x in (tmp_path / "out" / "swift" / "pairs.jsonl").read_text().splitlines()]
    assert not any(m in r["rejected_response"] for r in rows for m in ("<IMG_CONTEXT>", "<img>", "</img>"))
