"""The study's DCGAN networks (64x64, plus a 128x128 variant) and the BCE loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.api import GANLoss, conv_discriminator, conv_generator, init_dcgan_weights

# Feature maps per block. 64: as the study's appendix; 128: one more block, widths halved
# at the high-resolution end so the parameter count stays close to the 64 model's.
GENERATOR_WIDTHS = {64: [512, 256, 128, 64], 128: [512, 256, 128, 64, 32]}
DISCRIMINATOR_WIDTHS = {64: [64, 128, 256, 512], 128: [32, 64, 128, 256, 512]}


def build_generator(resolution: int, channels: int, noise_dim: int = 100) -> nn.Module:
    net = conv_generator(noise_dim, GENERATOR_WIDTHS[resolution], channels, bias=False)
    net.apply(init_dcgan_weights)
    return net


def build_discriminator(resolution: int, channels: int) -> nn.Module:
    net = conv_discriminator(channels, DISCRIMINATOR_WIDTHS[resolution], norm="batch", bias=False, norm_first=False)
    net.apply(init_dcgan_weights)
    return net


class BCELoss(GANLoss):
    """The original GAN loss on logits, with the non-saturating generator loss."""

    optimizer_defaults: dict[str, Any] = {"lr": 2e-4, "betas": (0.5, 0.999)}
    per_sample = True

    def __init__(self, n_critic: int = 1) -> None:
        self.n_critic = n_critic

    def discriminator_loss(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real_logits = discriminator(real)
        fake_logits = discriminator(fake)
        loss_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        loss_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        parts = {"d_real": torch.sigmoid(real_logits).mean().detach(), "d_fake": torch.sigmoid(fake_logits).mean().detach()}
        return loss_real + loss_fake, parts

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        logits = discriminator(fake)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
