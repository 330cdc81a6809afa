"""Sampling images from a checkpoint to PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import torch
import torchvision.utils

from .checkpoint import load_gan
from .data import to_uint8
from .trainer import resolve_device


def write_png(path: Path, image: torch.Tensor) -> None:
    """Write one uint8 (C, H, W) image, gray or RGB."""
    array = image.permute(1, 2, 0).numpy()
    array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.shape[2] == 3 else array[:, :, 0]
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")


def generate_images(checkpoint: str | Path, n: int, out: str | Path, seed: int = 0, grid: Path | None = None, device: str = "auto") -> list[Path]:
    """Sample `n` images with `seed` and write them as out/sample-00000.png ...; returns the paths."""
    gan = load_gan(checkpoint, device=resolve_device(device))
    images = to_uint8(gan.sample(n, seed=seed))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = out / f"sample-{i:05d}.png"
        write_png(path, image)
        paths.append(path)
    if grid is not None:
        Path(grid).parent.mkdir(parents=True, exist_ok=True)
        write_png(Path(grid), torchvision.utils.make_grid(images, nrow=max(1, int(len(images) ** 0.5)), padding=2))
    return paths
