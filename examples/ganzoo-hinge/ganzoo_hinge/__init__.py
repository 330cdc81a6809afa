"""ganzoo plugin: the hinge loss (Lim & Ye 2017; Miyato et al. 2018) with an optional R1 penalty.

Installed, it is found through the `ganzoo` entry-point group like the built-in plugins, so
`ganzoo train --loss hinge` works without any change to ganzoo. It exists to show that path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.api import GANLoss, Register, has_batch_norm, hookimpl


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """mean(relu(1 - D(real))) + mean(relu(1 + D(fake))): scores past the margin cost nothing."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def hinge_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-mean(D(fake)): the generator pushes the fake scores up without a margin."""
    return -fake_scores.mean()


def r1_penalty(real_scores: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||^2] over the real images (Mescheder et al. 2018); `real` must require grad.

    The graph is kept so the penalty itself can be back-propagated into the discriminator.
    """
    (grad,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


class HingeLoss(GANLoss):
    """Hinge loss (SNGAN/BigGAN style), plus (r1_gamma / 2) * R1 on the reals when r1_gamma > 0."""

    optimizer_defaults: dict[str, Any] = {"lr": 2e-4, "betas": (0.5, 0.999)}

    def __init__(self, r1_gamma: float = 0.0, n_critic: int = 1) -> None:
        self.r1_gamma = r1_gamma
        self.n_critic = n_critic

    def loss_args(self) -> dict[str, Any]:
        return {"r1_gamma": self.r1_gamma, "n_critic": self.n_critic}

    def check_args(self) -> list[str]:
        """ganzoo has checked the types against `__init__`'s annotations; the ranges are ours."""
        problems = super().check_args()
        if not self.r1_gamma >= 0:
            problems.append(f"r1_gamma must be >= 0, got {self.r1_gamma!r}")
        return problems

    def discriminator_loss(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        real_scores = discriminator(real)
        fake_scores = discriminator(fake)
        loss = hinge_discriminator_loss(real_scores, fake_scores)
        parts = {"d_real": real_scores.mean().detach(), "d_fake": fake_scores.mean().detach()}
        if self.r1_gamma > 0:
            r1 = r1_penalty(real_scores, real)
            loss = loss + 0.5 * self.r1_gamma * r1
            parts["r1"] = r1.detach()
        return loss, parts

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        return hinge_generator_loss(discriminator(fake))

    def check_discriminator(self, discriminator: nn.Module) -> list[str]:
        if self.r1_gamma > 0 and has_batch_norm(discriminator):
            return [
                "the R1 penalty assumes a per-sample discriminator, but this one uses BatchNorm "
                "(samples interact): prefer a discriminator without BatchNorm (e.g. --arch wgan-gp)"
            ]
        return []


@hookimpl
def ganzoo_register_losses(register: Register) -> None:
    register("hinge", HingeLoss)
