"""Multi-node, proven on one machine: two `ivl3 train` launchers really rendezvous and train.

Two processes of ``ivl3 train tiny-cpu --nnodes 2 --node-rank {0,1} --master-addr 127.0.0.1`` (one
training process each, CPU, torch's gloo backend) must train exactly as one node with two processes
(``--gpus 2``): the same world size, data order and global batch, so the same logged losses. This is
the path a 2 x 8-GPU job takes (``NNODES``/``NODE_RANK``/``MASTER_ADDR`` handed to ms-swift, which
starts torchrun on each node), minus the GPUs.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from swift_cli import logged_losses, swift_env

pytestmark = pytest.mark.e2e
STEPS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(out: Path, *extra) -> list:
    return [sys.executable, "-m", "ivl3_plugin", "train", "tiny-cpu", f"max_steps={STEPS}", f"save_steps={STEPS}",
            "save_strategy=no", f"output_dir={out}", "seed=7", *extra]


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_model, demo_annotations):
    from ivl3_plugin.convert import convert

    home = tmp_path_factory.mktemp("home")
    convert(demo_annotations, home / "datasets" / "demo", num_frames=2)
    (home / "tiny-internvl3").symlink_to(tiny_model, target_is_directory=True)  # what `ivl3-tiny` resolves to
    return home


def test_two_launchers_rendezvous_and_train_like_one_node_with_two_processes(home, tmp_path):
    env = swift_env(IVL3_HOME=home)
    one_node = tmp_path / "one-node"
    proc = subprocess.run(_argv(one_node, "--gpus", "2", "--master-port", str(_free_port())), cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "NPROC_PER_NODE=2" in proc.stderr  # the launch line ivl3 train prints

    two_nodes = tmp_path / "two-nodes"
    port = str(_free_port())
    nodes = [subprocess.Popen(_argv(two_nodes, "--gpus", "1", "--nnodes", "2", "--node-rank", str(rank),
                                    "--master-addr", "127.0.0.1", "--master-port", port),
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=1200) for node in nodes]
    for rank, (node, (out, err)) in enumerate(zip(nodes, outputs)):
        assert node.returncode == 0, f"node {rank}:\n{out[-3000:]}\n{err[-6000:]}"
        assert f"NNODES=2 NODE_RANK={rank} MASTER_ADDR=127.0.0.1" in err
    args = json.loads(next(two_nodes.rglob("args.json")).read_text())
    assert args["max_steps"] == STEPS

    single, multi = logged_losses(one_node), logged_losses(two_nodes)
    assert len(single) == len(multi) == STEPS, (single, multi)
    assert multi == pytest.approx(single, rel=1e-5, abs=1e-6)
