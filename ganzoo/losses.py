"""The interface a loss plugin implements."""

from __future__ import annotations

import inspect
import math
import typing
from typing import Any, Iterator

import torch
from torch import nn

from .errors import GanzooError
from .plugins import registry


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
    # Set by the trainer when the critic is per-sample and the fast path is on: the loss may
    # then score real and fake in one discriminator pass on cat(real, fake).
    joint_pass: bool = False

    def loss_args(self) -> dict[str, Any]:
        """The options that rebuild this loss (saved in config.json)."""
        return {"n_critic": self.n_critic}

    def check_args(self) -> list[str]:
        """Problems with the options this loss was built with (ranges); each becomes one clear error.

        Types are checked before construction against the `__init__` annotations; override
        this (calling super) to check the ranges of your own options.
        """
        n_critic = self.n_critic
        if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
            return [f"n_critic must be an integer >= 1, got {n_critic!r}"]
        return []

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
    """Instantiate a registered loss; an option it does not take, of the wrong type or out of
    range is one clear error naming the loss and the option."""
    cls = registry("losses").get(name)
    parameters = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # a plugin's unresolvable annotation: no type checks, ranges still apply
        hints = {}
    values = {}
    for key, value in kwargs.items():
        if key not in parameters:
            raise GanzooError(f"loss {name!r} has no option {key!r}; it takes: {', '.join(parameters) or 'none'}")
        values[key] = _typed_option(name, key, value, hints.get(key))
    loss = cls(**values)
    problems = loss.check_args()
    if problems:
        raise GanzooError(f"loss {name!r}: {'; '.join(problems)}")
    return loss


def _typed_option(loss: str, key: str, value: Any, hint: Any) -> Any:
    """`value` as the annotated int/float/bool/str; an int is accepted for a float."""
    expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if hint not in expected:
        return value
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise GanzooError(f"loss {loss!r} option {key} must be {expected[hint]}, got {value!r}")
    return float(value) if hint is float else value
