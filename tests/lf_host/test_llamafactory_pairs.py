"""``ivl3 pairs``' LLaMA-Factory file is read by LLaMA-Factory's own pairwise (ranking) sharegpt converter."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("llamafactory.data")

from llamafactory.data.converter import SharegptDatasetConverter  # noqa: E402
from llamafactory.data.parser import get_dataset_list  # noqa: E402
from llamafactory.hparams import DataArguments  # noqa: E402

from ivl3_plugin.preference.formats import write_pairs  # noqa: E402
from ivl3_plugin.preference.inputs import Item  # noqa: E402
from ivl3_plugin.preference.scoring import ScoredItem  # noqa: E402
from ivl3_plugin.preference.selection import Pair  # noqa: E402


def _pair(system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": "<video>\nSummarise."}, {"role": "assistant", "content": "A red circle moves."}]
    row = {"id": "v0", "messages": messages, "videos": [["/f/v0/0.jpg", "/f/v0/1.jpg", "/f/v0/2.jpg"]]}
    item = Item("d.jsonl:1", "v0", row, "A red circle moves.", ["A red circle moves."], ["A shape."])
    return Pair(ScoredItem(item, [1.0], [{"rougeL": 1.0}]), "A red circle moves.", "A shape.", None, 0)


def test_llamafactory_reads_prompt_chosen_rejected_and_every_frame(tmp_path):
    for system, out in ((None, tmp_path / "plain"), ("You summarise videos.", tmp_path / "sys")):
        write_pairs([_pair(system)], out)
        (attr,) = get_dataset_list(["ivl3_pairs"], str(out / "llamafactory"))
        assert attr.ranking and attr.formatting == "sharegpt"
        row = json.loads((out / "llamafactory" / "pairs.json").read_text())[0]
        got = SharegptDatasetConverter(attr, DataArguments(dataset_dir=str(out / "llamafactory")))(row)
        assert got["_prompt"] == [{"role": "user", "content": "<video>\nSummarise."}]
        assert got["_response"] == [{"role": "assistant", "content": "A red circle moves."},
                                    {"role": "assistant", "content": "A shape."}]
        assert got["_videos"] == [["/f/v0/0.jpg", "/f/v0/1.jpg", "/f/v0/2.jpg"]]
        assert got["_system"] == (system or "")
