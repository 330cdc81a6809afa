"""One run across machines: `torchrun --nnodes 2` with the c10d rendezvous, two agents on this
machine standing in for two nodes (gloo, CPU). It trains and resumes exactly as one node with two
processes does (docs/scaling.md)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import torch

from test_ddp import ARGS, env, needs_distributed, tensors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(tmp_path: Path, *args: str) -> None:
    """Two torchrun agents, one process each, meeting at one rendezvous endpoint as two nodes would."""
    endpoint = f"127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", endpoint, "--rdzv-id", f"test-{endpoint}", "-m", "ganzoo", *ARGS, *args]
    agents = [subprocess.Popen(cmd, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [agent.communicate(timeout=180)[0] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], "\n".join(o[-2000:] for o in outputs)


@needs_distributed
def test_two_nodes_train_and_resume_like_one_node_with_two_processes(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes"
    two_nodes(tmp_path, "--steps", "1", "--out", str(nodes))
    two_nodes(tmp_path, "--steps", "2", "--resume", str(nodes))
    one_node = tmp_path / "one-node"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ganzoo", *ARGS, "--steps", "2", "--out", str(one_node)]
    done = subprocess.run(cmd, env=env(tmp_path), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]

    assert sorted(p.name for p in (nodes / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    for a, b in zip(tensors(nodes / "last"), tensors(one_node / "last")):  # weights, then optimizer state and RNGs
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
