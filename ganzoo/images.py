"""Image tensors to and from files: [-1, 1] floats to uint8 or uint16, PNGs and sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision.utils


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 images (N, C, H, W)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_uint16(images: torch.Tensor) -> np.ndarray:
    """Generator output in [-1, 1] -> uint16 images (N, C, H, W), straight from the floats."""
    return ((images.detach().cpu().float().clamp(-1, 1) + 1) * 32767.5).round().numpy().astype(np.uint16)


def write_png(path: Path, image: torch.Tensor | np.ndarray) -> None:
    """Write one uint8 or uint16 (C, H, W) image: one channel as a grayscale PNG, three as RGB."""
    array = image.transpose(1, 2, 0) if isinstance(image, np.ndarray) else image.permute(1, 2, 0).numpy()
    array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.shape[2] == 3 else array[:, :, 0]
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")


def write_grid(path: Path, images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> None:
    """Write uint8 (N, C, H, W) images as one grid PNG; grayscale stays one channel."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.sqrt(len(images))))
    grid = torchvision.utils.make_grid(images, nrow=nrow, padding=padding)
    write_png(path, grid[:1] if images.shape[1] == 1 else grid)
