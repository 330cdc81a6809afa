"""Sampling images from a checkpoint to PNG files."""

from __future__ import annotations

from pathlib import Path

from .hub import load_checkpoint
from .images import to_uint8, write_grid, write_png
from .runtime import resolve_device


def generate_images(checkpoint: str | Path, n: int, out: str | Path, seed: int = 0, grid: Path | None = None, device: str = "auto") -> list[Path]:
    """Sample `n` images with `seed` and write them as out/sample-00000.png ...; returns the paths."""
    gan = load_checkpoint(checkpoint, device=resolve_device(device))
    images = to_uint8(gan.sample(n, seed=seed))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = out / f"sample-{i:05d}.png"
        write_png(path, image)
        paths.append(path)
    if grid is not None:
        write_grid(Path(grid), images)
    return paths
