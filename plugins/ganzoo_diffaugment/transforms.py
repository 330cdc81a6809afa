"""DiffAugment (Zhao et al. 2020), differentiable augmentation for small datasets.

With a few hundred X-rays the discriminator memorises the training set; augmenting only the
reals would teach the generator the augmentations. DiffAugment applies the same kind of
random, differentiable transform to every image the discriminator sees, real or fake, in
both the discriminator and the generator step, so gradients still reach the generator.
`--augment diffaugment:color,translation,cutout` selects it (the trainer does the wrapping).

As in the reference (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py) every image
in a batch gets its own random parameters and nothing is clamped. All randomness comes from
the `rng` the trainer passes in (its saved generator), so a resumed run draws the same numbers,
and is drawn for the global batch (`draw_per_sample`), so image i is augmented alike under
torchrun and in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ganzoo.api import GanzooError, draw_per_sample, per_sample_rand

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5

Op = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def _uniform(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """One U[0, 1) number per image, shaped to broadcast over (C, H, W)."""
    return per_sample_rand(x.shape[0], rng, x.device, x.dtype)


def _integers(x: torch.Tensor, rng: torch.Generator | None, low: int, high: int) -> torch.Tensor:
    """One integer in [low, high) per image, shaped (N, 1, 1)."""
    return draw_per_sample(x.shape[0], lambda m: torch.randint(low, high, (m, 1, 1), generator=rng, device=x.device))


def rand_brightness(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """Add a per-image offset in [-0.5, 0.5)."""
    return x + (_uniform(x, rng) - 0.5)


def rand_saturation(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """Scale each pixel's distance to its channel mean by [0, 2); a no-op on gray images."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, rng) * 2) + mean


def rand_contrast(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """Scale each image's distance to its own mean by [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, rng) + 0.5) + mean


def rand_translation(x: torch.Tensor, rng: torch.Generator | None, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by whole pixels, up to `ratio` of its size, filling with zeros."""
    n, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _integers(x, rng, -shift_h, shift_h + 1)
    dx = _integers(x, rng, -shift_w, shift_w + 1)
    # Indices into the image padded by one zero pixel; anything shifted in from outside reads the padding.
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor, rng: torch.Generator | None, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square per image, `ratio` of the image's size, centred anywhere (clipped at the border)."""
    h, w = x.shape[2:]
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    centre_y = _integers(x, rng, 0, h + (1 - size_h % 2))
    centre_x = _integers(x, rng, 0, w + (1 - size_w % 2))
    rows = torch.arange(h, device=x.device).view(1, h, 1) - (centre_y - size_h // 2)
    cols = torch.arange(w, device=x.device).view(1, 1, w) - (centre_x - size_w // 2)
    hole = (rows >= 0) & (rows < size_h) & (cols >= 0) & (cols < size_w)
    return x * (~hole).unsqueeze(1).to(x.dtype)


POLICIES: dict[str, tuple[Op, ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}
DEFAULT_POLICY = ("color", "translation", "cutout")


@dataclass(frozen=True)
class DiffAugment:
    """The transform `--augment diffaugment:...` builds: the policies' ops in the order given."""

    policy: tuple[str, ...] = DEFAULT_POLICY

    def __post_init__(self) -> None:
        unknown = [name for name in self.policy if name not in POLICIES]
        if unknown or not self.policy:
            raise GanzooError(
                f"diffaugment has no policy {', '.join(map(repr, unknown)) or '(empty)'}; "
                f"choose from {', '.join(POLICIES)} (e.g. diffaugment:color,translation,cutout)"
            )

    def __call__(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        for name in self.policy:
            for op in POLICIES[name]:
                x = op(x, rng)
        return x.contiguous()


def build(options: list[str]) -> DiffAugment:
    """`diffaugment` alone means all three policies, the paper's choice for small datasets."""
    return DiffAugment(tuple(options) if options else DEFAULT_POLICY)
