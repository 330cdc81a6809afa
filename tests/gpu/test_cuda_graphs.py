"""CUDA graphs on a GPU: the numbers of eager steps, exact resume, and loud capture failures.

Each run is a few steps: the graph runs 3 eager warm-up iterations, captures the 4th, then
replays, so 6 steps cover all three phases.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import ganzoo
from ganzoo.checkpoint import load_gan
from ganzoo.config import TrainConfig
from ganzoo.trainer import Trainer

DEVICE = "cuda"
STEPS = 6
MODELS = [("dcgan", 64), ("wgan-gp", 64), ("wgan-gp", 128)]
IDS = [f"{arch}-{res}" for arch, res in MODELS]


def config(run: Path, arch: str, res: int, **kwargs: Any) -> TrainConfig:
    values = {"arch": arch, "res": res, "images": 64, "batch_size": 16, "steps": STEPS, "device": DEVICE, "out": str(run / "run"), "log_every": 1}
    return TrainConfig.from_dict({**values, **kwargs})


def run_steps(trainer: Trainer, steps: int) -> list[dict[str, float]]:
    return [{key: float(value) for key, value in trainer.training_step().items()} for _ in range(steps)]


def floats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


@pytest.mark.parametrize("arch, res", MODELS, ids=IDS)
def test_graphed_steps_match_eager_steps(tmp_path: Path, arch: str, res: int, deterministic: None) -> None:
    """Same seeds with and without graphs: the weights move the same way, within float noise
    (capturable Adam keeps its step on the device), and the losses of every step agree."""
    eager = Trainer(config(tmp_path / "eager", arch, res, cuda_graphs=False))
    graphed = Trainer(config(tmp_path / "graphed", arch, res, cuda_graphs=True), data=eager.data)
    start = floats(eager.gan)
    assert all(torch.equal(value, floats(graphed.gan)[key]) for key, value in start.items())
    eager_losses, graphed_losses = run_steps(eager, STEPS), run_steps(graphed, STEPS)
    assert graphed._graphed is not None and graphed._graphed.graph is not None, "no graph was captured"
    assert eager._graphed is None
    for a, b in zip(eager_losses, graphed_losses):
        assert a.keys() == b.keys()
        assert all(b[key] == pytest.approx(a[key], rel=2e-2, abs=1e-2) for key in a), (a, b)
    e, g = floats(eager.gan), floats(graphed.gan)
    moved = sum(float(((e[k] - start[k]) ** 2).sum()) for k in e) ** 0.5
    apart = sum(float(((e[k] - g[k]) ** 2).sum()) for k in e) ** 0.5
    assert moved > 0 and apart <= 0.02 * moved, f"graphed weights are {apart / moved:.3%} of the update away from eager ones"


@pytest.mark.parametrize("arch, res", MODELS, ids=IDS)
def test_resume_under_graphs_is_exact(tmp_path: Path, arch: str, res: int, deterministic: None) -> None:
    """N steps, save, resume to 2N (re-warming and re-capturing the graph) == 2N straight."""
    straight = ganzoo.train(config(tmp_path / "a", arch, res, steps=2 * STEPS, cuda_graphs=True))
    ganzoo.train(config(tmp_path / "b", arch, res, steps=STEPS, cuda_graphs=True))
    resumed = ganzoo.train(config(tmp_path / "b", arch, res, steps=2 * STEPS, cuda_graphs=True, resume=str(tmp_path / "b" / "run"), out=None))
    assert resumed.name == straight.name == f"step-{2 * STEPS:08d}"
    reference = load_gan(straight).state_dict()
    for key, value in load_gan(resumed).state_dict().items():
        assert torch.equal(value, reference[key]), key
    a = load_file(str(straight / "trainer_state.safetensors"))
    b = load_file(str(resumed / "trainer_state.safetensors"))
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    logs = [[json.loads(line) for line in (run / "run" / "log.jsonl").read_text().splitlines()] for run in (tmp_path / "a", tmp_path / "b")]
    assert [r["d_loss"] for r in logs[0][STEPS:]] == [r["d_loss"] for r in logs[1][-STEPS:]]


def failing_capture(trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the iteration raise while a stream is capturing (and only then)."""
    iteration = trainer._iteration

    def body(real_for: Any) -> Any:
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("injected capture failure")
        return iteration(real_for)

    monkeypatch.setattr(trainer, "_iteration", body)


def test_capture_failure_is_an_error_in_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/gpu sets GANZOO_STRICT_CUDA_GRAPHS=1: a capture failure propagates, no fallback."""
    trainer = Trainer(config(tmp_path, "dcgan", 64, cuda_graphs=True))
    failing_capture(trainer, monkeypatch)
    with pytest.raises(RuntimeError, match="injected capture failure"):
        run_steps(trainer, STEPS)
    assert trainer.step == 3  # the three eager warm-up steps, then the capture raised


def test_capture_failure_falls_back_outside_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without the switch (users' runs) a failed capture warns and training goes on eagerly."""
    monkeypatch.delenv("GANZOO_STRICT_CUDA_GRAPHS")
    trainer = Trainer(config(tmp_path, "dcgan", 64, cuda_graphs=True))
    failing_capture(trainer, monkeypatch)
    with caplog.at_level(logging.WARNING):
        losses = run_steps(trainer, STEPS)
    assert trainer.step == STEPS and not trainer._graphs_wanted and len(losses) == STEPS
    assert "CUDA graph capture failed" in caplog.text
