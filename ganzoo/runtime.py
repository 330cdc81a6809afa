"""Process-level helpers every part of ganzoo shares: devices, seeding, versions."""

from __future__ import annotations

import platform
import random
from importlib.metadata import PackageNotFoundError, version
from typing import Iterable

import numpy as np
import torch

from .config import MAX_SEED
from .errors import GanzooError
from .version import __version__


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """`auto` (CUDA when there is one), `cpu`, `cuda` or `cuda:N`; refuses CUDA where there is none."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GanzooError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanzooError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return device


def check_seed(seed: int, what: str = "seed") -> int:
    """A seed torch, numpy and Python all accept: 0 <= seed < 2**63."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise GanzooError(f"{what} must be an integer in [0, 2**63 - 1], got {seed!r}")
    return seed


def derived_seed(seed: int, stream: int) -> int:
    """The seed of the `stream`-th generator drawn from `seed` (noise blocks, data passes):
    seed * 1_000_003 + stream, kept inside torch's seed range for any valid seed."""
    return (int(seed) * 1_000_003 + int(stream)) % (MAX_SEED + 1)


def seed_everything(seed: int) -> None:
    """Seed every RNG a plugin might use: torch (CPU and CUDA), numpy, python."""
    torch.manual_seed(check_seed(seed))
    np.random.seed(seed % 2**32)
    random.seed(seed)


def environment_versions(packages: Iterable[str] = ()) -> dict[str, str]:
    """Versions saved with every run and report: ganzoo, Python, torch, numpy and `packages` if installed."""
    versions = {"ganzoo": __version__, "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for dist in ("torchvision", "opencv-python", *packages):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return versions
