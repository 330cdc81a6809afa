"""Architectures (how to build a generator/discriminator pair) and the GAN module."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .errors import GanzooError
from .plugins import registry
from .runtime import derived_seed

VALID_CHANNELS = (1, 3)


@dataclass(frozen=True)
class Architecture:
    """What a plugin registers for an architecture: builders plus what they support."""

    build_generator: Callable[..., nn.Module]
    build_discriminator: Callable[..., nn.Module]
    resolutions: tuple[int, ...]
    default_loss: str
    description: str = ""
    #: No sample's score depends on another's (no BatchNorm, minibatch-stddev, ...): the trainer
    #: may score real and fake in one pass and split a critic step into micro-batches.
    per_sample_critic: bool = False
    #: The fast path may replace the discriminator's parameter-free InstanceNorm2d and its
    #: thin first convolution by equivalent faster modules (same state_dict).
    fast_layer_swaps: bool = False


@dataclass(frozen=True)
class Normalization:
    """The units the generator was trained in: x = (pixel01 - mean) / std.

    mean = std = 0.5 is plain [-1, 1] scaling (`--normalize none`); `--normalize torch` uses the
    data's own mean/std. Saved in config.json, so `GAN.sample` can always return [-1, 1] images.
    """

    mean: float = 0.5
    std: float = 0.5

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise GanzooError(f"normalization {name} must be a finite number, got {value!r}")
        if self.std <= 0:
            raise GanzooError(f"normalization std must be > 0, got {self.std}")

    @classmethod
    def from_dict(cls, values: Any) -> "Normalization":
        if not isinstance(values, dict) or set(values) != {"mean", "std"}:
            raise GanzooError(f'normalization must be {{"mean": number, "std": number}}, got {values!r}')
        return cls(values["mean"], values["std"])

    def to_dict(self) -> dict[str, float]:
        return {"mean": float(self.mean), "std": float(self.std)}

    @property
    def is_unit_range(self) -> bool:
        return self.mean == 0.5 and self.std == 0.5

    def to_unit_range(self, x: torch.Tensor) -> torch.Tensor:
        """Generator output in these units -> images in [-1, 1] (2 * pixel01 - 1).

        Values that stand for pixels outside [0, 1] are clamped: no image can show them.
        """
        if self.is_unit_range:
            return x
        return ((x * self.std + self.mean) * 2 - 1).clamp(-1, 1)


class GAN(nn.Module):
    """A generator/discriminator pair, the arguments that rebuild it and its output units."""

    def __init__(
        self,
        architecture: str,
        generator: nn.Module,
        discriminator: nn.Module,
        model_args: dict[str, Any],
        normalization: Normalization = Normalization(),
    ):
        super().__init__()
        self.architecture = architecture
        self.model_args = dict(model_args)
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema: nn.Module | None = None
        self.normalization = normalization

    @property
    def noise_dim(self) -> int:
        return int(self.model_args["noise_dim"])

    @property
    def resolution(self) -> int:
        return int(self.model_args["resolution"])

    @property
    def channels(self) -> int:
        return int(self.model_args["channels"])

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def sampling_generator(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
        """`n` images in [-1, 1], shape (n, C, H, W); the same seed gives the same images.

        Noise is drawn on the CPU so a seed means the same images on every device; the
        generator runs in eval mode so an image does not depend on its batch-mates. The
        training normalisation is undone, so every consumer sees the same intensity scale.
        """
        if n < 0:
            raise GanzooError(f"number of samples must be >= 0, got {n}")
        z = seeded_noise(n, self.noise_dim, seed)
        net = self.sampling_generator()
        was_training = net.training
        net.eval()
        try:
            chunks = [
                self.normalization.to_unit_range(net(z[i : i + batch_size].to(self.device)).float().cpu())
                for i in range(0, n, batch_size)
            ]
        finally:
            net.train(was_training)
        if not chunks:
            return torch.empty(0, self.channels, self.resolution, self.resolution)
        return torch.cat(chunks)


NOISE_BLOCK = 256


def seeded_noise(n: int, noise_dim: int, seed: int) -> torch.Tensor:
    """z for `n` images, drawn on the CPU in fixed blocks so image i never depends on n."""
    blocks = []
    for block in range(-(-n // NOISE_BLOCK)):
        rng = torch.Generator().manual_seed(derived_seed(seed, block))
        blocks.append(torch.randn(NOISE_BLOCK, noise_dim, 1, 1, generator=rng))
    return torch.cat(blocks)[:n] if blocks else torch.empty(0, noise_dim, 1, 1)


def get_architecture(name: str) -> Architecture:
    return registry("architectures").get(name)


def create_gan(arch: str, res: int = 64, channels: int = 1, noise_dim: int = 100, **kwargs: Any) -> GAN:
    """Build a fresh GAN from the registry; `kwargs` go to both builders."""
    spec = get_architecture(arch)
    if res not in spec.resolutions:
        supported = ", ".join(str(r) for r in spec.resolutions)
        raise GanzooError(f"architecture {arch!r} does not support resolution {res}; supported: {supported}")
    if channels not in VALID_CHANNELS:
        raise GanzooError(f"channels must be 1 or 3, got {channels}")
    if noise_dim < 1:
        raise GanzooError(f"noise_dim must be >= 1, got {noise_dim}")
    model_args = {"resolution": res, "channels": channels, "noise_dim": noise_dim, **kwargs}
    generator = spec.build_generator(resolution=res, channels=channels, noise_dim=noise_dim, **kwargs)
    discriminator = spec.build_discriminator(resolution=res, channels=channels, **kwargs)
    return GAN(arch, generator, discriminator, model_args)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02); norm weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
