"""Differentiable discriminator augmentations (e.g. DiffAugment), provided by plugins.

The trainer wraps the discriminator so every image it sees, real or fake, passes through
the same kind of random transform; losses stay unaware of augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import GanzooError
from .plugins import registry

Transform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class Augmentation:
    """What a plugin registers: `build(options)` returns a differentiable transform(x, rng)."""

    build: Callable[[list[str]], Transform]
    description: str = ""


class AugmentedDiscriminator(nn.Module):
    """D(T(x)): the transform draws its randomness from the trainer's saved generator."""

    def __init__(self, discriminator: nn.Module, transform: Transform, rng: torch.Generator | None) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.transform = transform
        self.rng = rng

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.transform(x, self.rng))


def build_augmentation(spec: str) -> Transform:
    """`name` or `name:opt1,opt2` (e.g. `diffaugment:color,translation,cutout`) -> transform."""
    name, _, options = spec.partition(":")
    if not name:
        raise GanzooError(f"--augment must look like NAME or NAME:OPTION,OPTION, got {spec!r}")
    augmentation: Augmentation = registry("augmentations").get(name)
    return augmentation.build([o.strip() for o in options.split(",") if o.strip()])
