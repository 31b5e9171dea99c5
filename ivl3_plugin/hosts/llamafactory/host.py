"""The LLaMA-Factory host: :class:`LlamaFactoryHost` implements :class:`~ivl3_plugin.hosts.protocol.Host`."""
from __future__ import annotations

from pathlib import Path
from typing import List

from ..protocol import HostError, PredictRequest


class LlamaFactoryHost:
    name = "llamafactory"
    description = "LLaMA-Factory 0.9.5 in its own environment (.venv-lf): training with our template"

    def install(self) -> None:
        from .install import install

        install()

    def validate(self, recipe) -> List[str]:
        from ...checkpoint.converter import detect_format
        from ...checkpoint.errors import CheckpointError
        from .launch import lf_args

        model = recipe.args.get("model")
        if isinstance(model, str) and Path(model).expanduser().is_dir():
            try:
                fmt = detect_format(Path(model).expanduser())
            except CheckpointError:
                fmt = None
            if fmt == "remote":
                return [f"{recipe.where}: field 'model': {model} is a remote-code InternVLChatModel checkpoint, which "
                        "LLaMA-Factory does not load; convert it once with `ivl3 checkpoint to-hf "
                        f"{model} {model.rstrip('/')}-hf` and pass the -hf folder"]
        try:
            lf_args(recipe.args)
        except ValueError as exc:
            return [f"{recipe.where}: {exc}"]
        return []

    def training_launch(self, recipe, topology):
        from .launch import training_launch

        return training_launch(recipe, topology)

    def predict(self, request: PredictRequest) -> Path:
        raise HostError("predictions run through ms-swift (`ivl3 predict`, host swift): a model trained with "
                        "LLaMA-Factory is a transformers-native checkpoint that `ivl3 predict --model DIR` reads")
