"""An ms-swift external plugin for tests: the callback ``ivl3_test_batches`` appends one JSON line per
micro-batch the trainer prepares to the file named by ``IVL3_TEST_BATCHES``: each row's real length
(attention mask), the padded width, the longest answer and how many positions ``logits_to_keep`` kept.
Recorded after ms-swift's ``_prepare_inputs``, i.e. what the model is really fed."""
import json
import os

from swift.callbacks import callbacks_map
from swift.callbacks.base import TrainerCallback


class BatchRecorder(TrainerCallback):
    def __init__(self, args, trainer):
        super().__init__(args, trainer)
        prepare = trainer._prepare_inputs

        def recorded(inputs):
            out = prepare(inputs)
            keep = out.get("logits_to_keep")
            with open(os.environ["IVL3_TEST_BATCHES"], "a") as f:
                f.write(json.dumps({"lengths": [int(x) for x in out["attention_mask"].sum(1)],
                                    "width": int(out["input_ids"].shape[1]),
                                    "answer": int((out["labels"] != -100).sum(1).max()),
                                    "kept": int(keep.sum()) if hasattr(keep, "sum") else keep}) + "\n")
            return out

        trainer._prepare_inputs = recorded


callbacks_map["ivl3_test_batches"] = BatchRecorder
