"""What a host adapter offers: the small protocol every host in :data:`ivl3_plugin.hosts.HOSTS` implements.

A third host (say, a plain ``transformers`` Trainer) is a package under ``ivl3_plugin/hosts/`` with
a class implementing :class:`Host`, added to the ``HOSTS`` table; nothing outside ``hosts/``
changes.  Methods that a host cannot support raise :class:`HostError` with the reason and what to
use instead (docs/hosts.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Protocol, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    from ..recipe.config import Recipe
    from ..recipe.launch import Launch, Topology

PathLike = Union[str, os.PathLike]


class HostError(RuntimeError):
    """The host cannot do what was asked (not installed, not supported); the message says what to do."""


@dataclass
class PredictRequest:
    """One prediction run: a model (and LoRA adapters), a converted dataset file, where to write.

    ``num_samples`` > 1 asks for that many sampled candidate summaries per row (preference pairs,
    ``ivl3 pairs``): ``temperature`` must then be > 0, and ``seed`` makes the sampling repeatable.
    The defaults (1, 0.0, 0) are greedy decoding, one summary per row.  A host that cannot sample
    raises :class:`HostError` saying so.
    """

    model: Optional[PathLike]
    dataset: PathLike
    out: PathLike
    adapters: Sequence[PathLike] = ()
    template: str = "ivl3_video"
    max_new_tokens: int = 128
    max_batch_size: int = 4
    extra_args: Sequence[str] = ()
    env: Optional[Dict[str, str]] = None
    timeout: Optional[float] = None
    progress: bool = False
    num_samples: int = 1
    temperature: float = 0.0
    seed: int = 0
    notes: List[str] = field(default_factory=list)


class Host(Protocol):
    """A training framework ivl3-plugin plugs into."""

    name: str
    description: str

    def install(self) -> None:
        """Register every loaded plugin's templates, datasets (and metrics, callbacks) with the host.

        Runs inside the host's own processes (every rank and dataset worker)."""

    def validate(self, recipe: "Recipe") -> List[str]:
        """Problems this host finds in a recipe before anything starts (each names the file and field)."""

    def training_launch(self, recipe: "Recipe", topology: "Topology") -> "Launch":
        """argv + env that train a prepared recipe (``recipe.launch.prepare``) on ``topology``."""

    def predict(self, request: PredictRequest) -> Path:
        """Generate summaries for a converted dataset; writes our predictions JSONL, returns its path."""
