"""The interface a loss plugin implements."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn


class GANLoss:
    """Base class for losses. Subclasses take their options as keyword arguments.

    `n_critic` discriminator steps run per generator step; `optimizer_defaults` are the
    Adam settings the trainer uses unless the user overrides them.
    """

    n_critic: int = 1
    optimizer_defaults: dict[str, Any] = {"lr": 2e-4, "betas": (0.5, 0.999)}
    # True when the discriminator loss is a mean over samples of per-sample terms (no batch
    # statistics), so the trainer may compute it in chunks and add them up, weighted by size.
    per_sample: bool = False

    def loss_args(self) -> dict[str, Any]:
        """The options that rebuild this loss (saved in config.json)."""
        return {"n_critic": self.n_critic}

    def discriminator_loss(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The discriminator's loss and named parts to log (detached tensors)."""
        raise NotImplementedError

    def discriminator_terms(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """The discriminator's loss as terms that add up to it, with their parts to log.

        The trainer backwards each term before it asks for the next, so the terms' graphs are
        never in memory together. Override it to split a loss; by default it is one term.
        """
        yield self.discriminator_loss(discriminator, real, fake, rng)

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_discriminator(self, discriminator: nn.Module) -> list[str]:
        """Warnings about a discriminator this loss's maths does not fit."""
        return []


def build_loss(name: str, **kwargs: Any) -> GANLoss:
    """Instantiate a registered loss; an option it does not take is a clear error."""
    import inspect

    from .errors import GanzooError
    from .plugins import registry

    cls = registry("losses").get(name)
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    for key in kwargs:
        if key not in accepted:
            raise GanzooError(f"loss {name!r} has no option {key!r}; it takes: {', '.join(accepted) or 'none'}")
    return cls(**kwargs)
