"""Run by tests/test_ddp.py under torchrun: trains with test-only plugins and writes what this
rank saw to OUT/rank-N.json (skips, error, step, a digest of the weights, timed events).

    python -m torch.distributed.run --nproc-per-node 2 tests/ddp_worker.py OUT CONFIG_JSON
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ganzoo.api import GANLoss, Metric, Register, TrainingDiverged, evaluate, hookimpl
from ganzoo.config import TrainConfig
from ganzoo.plugins import register_plugin
from ganzoo.trainer import Trainer

EVAL_SECONDS = 1.5
EVENTS: list[tuple[str, int, float]] = []  # (what, its count on this rank, wall time)


class NaNOnRank(GANLoss):
    """The BCE GAN loss, except that on rank `nan_rank` the loss of update `nan_at` (from 1) of
    `nan_in` ("discriminator" or "generator") is NaN: one rank's data going bad."""

    def __init__(self, nan_rank: int = 1, nan_at: int = 0, nan_in: str = "discriminator") -> None:
        self.nan_rank, self.nan_at, self.nan_in = nan_rank, nan_at, nan_in
        self.updates = {"discriminator": 0, "generator": 0}

    def _maybe_nan(self, network: str, loss: torch.Tensor) -> torch.Tensor:
        self.updates[network] += 1
        EVENTS.append((f"{network}_update", self.updates[network], time.time()))
        hit = network == self.nan_in and self.updates[network] == self.nan_at and dist.get_rank() == self.nan_rank
        return loss * float("nan") if hit else loss

    def discriminator_loss(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real_logits, fake_logits = discriminator(real), discriminator(fake)
        loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        loss = loss + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return self._maybe_nan("discriminator", loss), {}

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        logits = discriminator(fake)
        return self._maybe_nan("generator", F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)))


class SlowMetric(Metric):
    """The mean pixel value, taking EVAL_SECONDS: an evaluation that keeps rank 0 busy."""

    needs_real = False

    def compute(self, fake: torch.Tensor, real: Any, context: Any) -> dict[str, Any]:
        time.sleep(EVAL_SECONDS)
        EVENTS.append(("eval_done", sum(e[0] == "eval_done" for e in EVENTS) + 1, time.time()))
        return {"value": float(fake.float().mean())}


@hookimpl
def ganzoo_register_losses(register: Register) -> None:
    register("nan-on-rank", NaNOnRank)


@hookimpl
def ganzoo_register_metrics(register: Register) -> None:
    register("slow-test", SlowMetric())


def evaluate_eval_metric(self: Trainer, log: Any) -> None:
    """Score `eval_metric` as Trainer.evaluate does once it honours that option."""
    report = evaluate(self.gan, None, metrics=(self.config.eval_metric,), n=4, seed=0, device=self.device)
    log.write(json.dumps({"step": self.step, "eval": report["metrics"][self.config.eval_metric]["value"]}) + "\n")


def timed_step(self: Trainer) -> Any:
    """Trainer.training_step, noting when it starts (before any collective of the step)."""
    EVENTS.append(("step_start", self.step + 1, time.time()))
    return TRAINING_STEP(self)


TRAINING_STEP = Trainer.training_step


def digest(module: nn.Module) -> str:
    tensors = module.state_dict().values()
    return hashlib.sha256(b"".join(t.detach().cpu().contiguous().numpy().tobytes() for t in tensors)).hexdigest()


def main() -> None:
    out, config = Path(sys.argv[1]), TrainConfig.from_dict(json.loads(sys.argv[2]))
    register_plugin(sys.modules[__name__], "ddp-test")
    Trainer.evaluate = evaluate_eval_metric  # this branch's Trainer.evaluate still hard-codes FID
    Trainer.training_step = timed_step
    trainer = Trainer(config)
    error = None
    try:
        trainer.fit()
    except TrainingDiverged as diverged:
        error = type(diverged).__name__
    finally:
        result = {"error": error, "step": trainer.step, "nan_skips": trainer.nan_skips, "weights": digest(trainer.gan), "events": EVENTS}
        (out / f"rank-{trainer.shard.rank}.json").write_text(json.dumps(result))
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
