"""ganzoo: a plugin-based GAN zoo for PyTorch, built for small medical-imaging datasets.

Research use only; nothing here is meant for clinical diagnosis.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

from .config import TrainConfig  # noqa: E402
from .models import GAN, create_gan  # noqa: E402


def train(config: "TrainConfig | dict") -> Path:
    """Train (or resume) a GAN from a TrainConfig or dict; returns the final checkpoint path."""
    from .trainer import train as _train

    return _train(config)


def load(path: str, device: str = "cpu") -> GAN:
    """Load a checkpoint directory, a run directory (its last checkpoint) or a hub location (`hub:NAME`)."""
    from .checkpoint import load_gan

    return load_gan(path, device=device)


__all__ = ["GAN", "TrainConfig", "create_gan", "load", "train", "__version__"]
