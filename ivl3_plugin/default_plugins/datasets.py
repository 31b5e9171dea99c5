"""Built-in dataset: the bundled demo videos, once converted (``ivl3 demo`` converts them)."""
from pathlib import Path

from .. import hookimpl
from ..datasets import DatasetSpec
from ..settings import home

DEMO_DATASET = "ivl3-demo"


def demo_dataset_dir() -> Path:
    return home() / "datasets" / "demo"


@hookimpl
def register_datasets(register):
    register(DEMO_DATASET, DatasetSpec(path=demo_dataset_dir(), description="bundled coloured-shape videos"))
