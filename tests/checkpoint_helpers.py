"""Helpers for the ivl3 checkpoint tests (a module, not conftest, so its name is unique)."""
from __future__ import annotations

import json
from pathlib import Path


def load_tensors(folder) -> dict:
    """Every tensor of a checkpoint folder, by name (all shards)."""
    from safetensors.torch import load_file

    out = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        for name, tensor in load_file(str(path)).items():
            assert name not in out, f"{name} in two shards"
            out[name] = tensor
    return out


def assert_bit_identical(a: dict, b: dict) -> None:
    import torch

    assert sorted(a) == sorted(b), sorted(set(a) ^ set(b))
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), f"tensor {name} differs"


def config(folder) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())


def leftovers(parent) -> list:
    """Temporary folders a conversion would leave beside its destination."""
    return sorted(p.name for p in Path(parent).iterdir() if ".ivl3-tmp-" in p.name or ".ivl3-old-" in p.name)


def image_batch(model_token_id: int, tiles: int = 2, seed: int = 0):
    """(pixel_values, input_ids): ``tiles`` random 448 px tiles, each as 256 image tokens amid text tokens."""
    import torch

    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(tiles, 3, 448, 448, generator=g)
    ids = [1, 7, 3]
    for i in range(tiles):
        ids += [model_token_id] * 256 + [9 + i, 4]
    ids += [11, 2]
    return pixel_values, torch.tensor([ids])
