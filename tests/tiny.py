"""The small training configuration every trainer test starts from: seconds on a 2-core CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganzoo.config import TrainConfig

TINY = {"arch": "dcgan", "images": 16, "batch_size": 8, "steps": 2, "device": "cpu", "log_every": 1}


def tiny_config(run_dir: Path, **overrides: Any) -> TrainConfig:
    """TINY writing to `run_dir`, with `overrides` (any TrainConfig key, `out` too) on top."""
    return TrainConfig.from_dict({**TINY, "out": str(run_dir), **overrides})
