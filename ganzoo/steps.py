"""One training step: n_critic discriminator updates, one generator update, NaN handling,
micro-batches, and the CUDA-graph replay of the whole step.

`TrainingSteps` is a mixin of `Trainer`: it uses the trainer's `gan`, `discriminator`, `loss`,
`fast`, `rng`, `shard`, `config`, optimizers and batch helpers, and keeps the update maths
apart from the run's lifecycle (setup, logging, checkpoints).
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator

import torch
from torch import nn

from . import distributed
from .console import logger
from .errors import GanzooError
from .fast import GraphedStep, frozen

Terms = Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]


class TrainingSteps:
    """The update maths of `Trainer` (see the module docstring for what it relies on)."""

    def training_step(self) -> dict[str, torch.Tensor] | None:
        """n_critic discriminator updates, then one generator update; returns detached losses.

        With `on_nan="skip"` an update whose loss is not finite is skipped (and counted) and
        None is returned; otherwise non-finite values are caught by the caller.
        """
        n_critic = self.loss.n_critic
        self.set_ema_decay()
        if self._graphs_wanted:
            return self._graphed_step()
        losses, skipped = self._iteration(lambda k: self.real_batch(self.step * n_critic + k))
        self.step += 1
        if skipped:
            self.nan_skips += 1
            logger.warning("non-finite loss at step %d: update skipped (--on-nan skip)", self.step)
            return None
        return losses

    def _iteration(self, real_for: Any) -> tuple[dict[str, torch.Tensor], bool]:
        """The updates of one step, without host synchronisation unless `on_nan` is skip."""
        G, D = self.gan.generator, self.discriminator
        skipped = False
        for k in range(self.loss.n_critic):
            real = real_for(k)
            with torch.no_grad(), self.fast.autocast(self.device):
                fake = G(self._noise_share())
            d_loss, parts, skip = self._update(self.opt_d, self._discriminator_terms(D, real, fake))
            skipped |= skip
        with frozen(D):
            g_loss, _, skip = self._update(self.opt_g, self._generator_terms(G, D))
            skipped |= skip
        if self.gan.generator_ema is not None:
            self.update_ema()
        return {"d_loss": d_loss, "g_loss": g_loss, **parts}, skipped

    def _discriminator_terms(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Terms:
        """The loss's terms, in chunks of `micro_batch` images (each weighted by its share of the
        batch) where both the critic and the loss are per-sample."""
        chunks = real.shape[0] // self.fast.micro_batch if self.fast.micro_batch else 1
        if chunks < 2 or not (self.loss.per_sample and self.per_sample_critic):
            yield from self.loss.discriminator_terms(D, real, fake, self.rng)
            return
        draws = distributed.ChunkDraws(real.shape[0])  # row i's random numbers as in one unchunked pass
        offset = 0
        for real_chunk, fake_chunk in zip(real.tensor_split(chunks), fake.tensor_split(chunks)):
            share = real_chunk.shape[0] / real.shape[0]
            for term, parts in draws.chunk(offset, self.loss.discriminator_terms(D, real_chunk, fake_chunk, self.rng)):
                yield term * share, {name: value * share for name, value in parts.items()}
            offset += real_chunk.shape[0]

    def _generator_terms(self, G: nn.Module, D: nn.Module) -> Terms:
        yield self.loss.generator_loss(D, G(self._noise_share())), {}

    def _update(self, optimizer: torch.optim.Optimizer, terms: Terms) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
        """One optimizer step on a loss given as terms, each built under autocast and backwarded
        before the next; returns the detached loss, its parts and whether a non-finite term
        made `on_nan="skip"` skip the update.

        Under torchrun every rank takes the same decision: the ranks' finiteness flags are
        all-reduced with the gradients; all skip together, and with `on_nan="stop"` a
        non-finite loss on any rank makes every rank's loss NaN, so all stop at the same check.
        """
        optimizer.zero_grad(set_to_none=True)
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        shared = self.shard.world > 1
        finite: torch.Tensor | None = None
        while True:
            with self.fast.autocast(self.device):
                term = next(terms, None)
            if term is None:
                break
            loss, term_parts = term
            if shared:  # no early return: the other ranks' forwards and all-reduces need this rank
                finite = torch.isfinite(loss.detach()) if finite is None else finite & torch.isfinite(loss.detach())
            elif self.config.on_nan == "skip" and not bool(torch.isfinite(loss)):
                optimizer.zero_grad(set_to_none=True)
                return loss.detach(), parts, True
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
            for name, value in term_parts.items():
                parts[name] = parts[name] + value if name in parts else value
        if total is None:
            raise GanzooError(f"loss {self.config.loss_name!r} yielded no terms to train on")
        if shared:
            params = (p for group in optimizer.param_groups for p in group["params"])
            everywhere = distributed.average_gradients(params, self.shard.world, finite)
            if self.config.on_nan == "skip" and not bool(everywhere):
                optimizer.zero_grad(set_to_none=True)
                return total, parts, True
            total = torch.where(everywhere, total, torch.full_like(total, math.nan))
        optimizer.step()
        return total, parts, False

    def _graphed_step(self) -> dict[str, torch.Tensor]:
        """One step through a CUDA graph; a capture that fails falls back to eager steps for good."""
        n_critic = self.loss.n_critic
        indices = torch.stack([self.batch_indices(self.step * n_critic + k) for k in range(n_critic)])
        if self._graphed is None:
            static = torch.empty_like(indices)
            self._graphed = GraphedStep(lambda idx: self._iteration(lambda k: self._model_input(idx[k]))[0], static, [self.rng])
        try:
            losses = self._graphed(indices)
        except Exception as error:  # capture is best effort: any failure means eager from here on
            if os.environ.get("GANZOO_STRICT_CUDA_GRAPHS") == "1":  # tests/gpu: a failed capture is an error
                raise
            logger.warning("CUDA graph capture failed (%s: %s); continuing without CUDA graphs", type(error).__name__, str(error).splitlines()[0] if str(error) else "")
            torch.cuda.synchronize(self.device)
            self._graphs_wanted = False
            self._graphed = None
            for opt in (self.opt_g, self.opt_d):
                opt.zero_grad(set_to_none=True)
            return self.training_step()
        self.step += 1
        return losses
