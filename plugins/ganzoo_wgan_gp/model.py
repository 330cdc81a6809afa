"""The study's WGAN-GP networks (64x64 and 128x128) and the Wasserstein-GP loss."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn

from ganzoo.api import GANLoss, conv_discriminator, conv_generator, has_batch_norm, init_dcgan_weights, per_sample_rand

# (generator widths, critic widths, biases) exactly as in the study's appendix.
LAYOUTS = {
    64: ([512, 256, 128, 64], [64, 128, 256, 512], False),
    128: ([512, 256, 128, 64, 32], [16, 32, 64, 128, 256], True),
}


def build_generator(resolution: int, channels: int, noise_dim: int = 100) -> nn.Module:
    widths, _, bias = LAYOUTS[resolution]
    net = conv_generator(noise_dim, widths, channels, bias=bias)
    net.apply(init_dcgan_weights)
    return net


def build_critic(resolution: int, channels: int) -> nn.Module:
    _, widths, bias = LAYOUTS[resolution]
    net = conv_discriminator(channels, widths, norm="instance", bias=bias, norm_first=True)
    net.apply(init_dcgan_weights)
    return net


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """E[(||grad D(xhat)||_2 - 1)^2] at xhat = alpha*real + (1-alpha)*fake, alpha per sample."""
    xhat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xhat).sum(), xhat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class WGANGPLoss(GANLoss):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017)."""

    optimizer_defaults: dict[str, Any] = {"lr": 1e-4, "betas": (0.0, 0.9)}
    per_sample = True

    def __init__(self, gp_lambda: float = 10.0, n_critic: int = 5) -> None:
        self.gp_lambda = float(gp_lambda)
        self.n_critic = n_critic

    def loss_args(self) -> dict[str, Any]:
        return {"gp_lambda": self.gp_lambda, "n_critic": self.n_critic}

    def check_args(self) -> list[str]:
        problems = super().check_args()
        if not self.gp_lambda >= 0:
            problems.append(f"gp_lambda must be >= 0, got {self.gp_lambda!r}")
        return problems

    def discriminator_loss(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        (wasserstein, parts), (penalty, gp_parts) = self.discriminator_terms(discriminator, real, fake, rng)
        return wasserstein + penalty, {**parts, **gp_parts}

    def discriminator_terms(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """D(fake) - D(real), then lambda * GP: the critic pass's activations are freed before
        the penalty's double-backward graph is built (lower peak memory, same gradients).
        With `joint_pass` (set by the trainer) the critic scores cat(real, fake) in one pass."""
        if self.joint_pass:
            d_real, d_fake = discriminator(torch.cat([real, fake.to(real.dtype)])).chunk(2)
            d_real, d_fake = d_real.mean(), d_fake.mean()
        else:
            d_real = discriminator(real).mean()
            d_fake = discriminator(fake).mean()
        yield d_fake - d_real, {"wasserstein": (d_real - d_fake).detach()}
        alpha = per_sample_rand(real.shape[0], rng, real.device, real.dtype)
        gp = gradient_penalty(discriminator, real, fake, alpha)
        yield self.gp_lambda * gp, {"gp": gp.detach()}

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        return -discriminator(fake).mean()

    def check_discriminator(self, discriminator: nn.Module) -> list[str]:
        if has_batch_norm(discriminator):
            return [
                "the gradient penalty assumes a per-sample critic, but this discriminator uses "
                "BatchNorm (samples interact): use a critic with InstanceNorm/LayerNorm or no norm "
                "(e.g. --arch wgan-gp), or --loss bce"
            ]
        return []
