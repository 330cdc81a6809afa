"""ganzoo: a plugin-based GAN zoo for PyTorch, built for small medical-imaging datasets.

Research use only; nothing here is meant for clinical diagnosis. Plugins import `ganzoo.api`;
this top level is the short user-facing API.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .config import TrainConfig
    from .models import GAN


def create_gan(arch: str, res: int = 64, channels: int = 1, noise_dim: int = 100, **kwargs: Any) -> "GAN":
    """Fresh networks of a registered architecture."""
    from .models import create_gan as _create

    return _create(arch, res=res, channels=channels, noise_dim=noise_dim, **kwargs)


def train(config: "TrainConfig | dict[str, Any]", on_progress: Any = None, quiet: bool = False) -> Path:
    """Train (or resume) a GAN from a TrainConfig or dict; returns the final checkpoint path.

    Progress is printed (a line every 30 s, a summary at the end) unless `quiet`; pass
    `on_progress(record)` to receive each log record (step, epoch, losses, images/s) instead.
    """
    from .runs import train as _train

    return _train(config, on_progress=on_progress, quiet=quiet)


def load(path: str | Path, device: str = "cpu") -> "GAN":
    """Load a checkpoint directory, a run directory (its last checkpoint) or a hub location (`hub:NAME`)."""
    from .hub import load_checkpoint

    return load_checkpoint(path, device=device)


def audit(model: Any = None, *, kind: str = "memorization", **options: Any) -> dict[str, Any]:
    """Audit a model's images with a registered audit (default `memorization`: are the samples
    copies of training images?); returns its report. Options as `ganzoo audit --help` says, e.g.
    `ganzoo.audit("runs/wgan", holdout="data/holdout", features="pixels", out="runs/audit")`."""
    from .audits import run_audit

    return run_audit(model, kind=kind, **options)


def __getattr__(name: str) -> Any:
    """`ganzoo.GAN` and `ganzoo.TrainConfig` without importing torch at `import ganzoo`."""
    if name == "GAN":
        from .models import GAN

        return GAN
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'ganzoo' has no attribute {name!r}")


__all__ = ["GAN", "TrainConfig", "audit", "create_gan", "load", "train", "__version__"]
