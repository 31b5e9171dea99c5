"""The ms-swift host: :class:`SwiftHost` implements :class:`~ivl3_plugin.hosts.protocol.Host`."""
from __future__ import annotations

from pathlib import Path
from typing import List

from ..protocol import PredictRequest


class SwiftHost:
    name = "swift"
    description = "ms-swift 4.6: swift sft / swift infer (primary host)"

    def install(self) -> None:
        from .install import install

        install()

    def validate(self, recipe) -> List[str]:
        from .validate import key_problems

        return key_problems(recipe)

    def training_launch(self, recipe, topology):
        from .launch import training_launch

        return training_launch(recipe, topology)

    def predict(self, request: PredictRequest) -> Path:
        from .infer import run_predict

        return run_predict(request)
