"""Sampling images from a checkpoint to PNG files."""

from __future__ import annotations

from pathlib import Path

from .errors import GanzooError
from .hub import load_checkpoint
from .images import to_uint8, write_grid, write_png
from .runtime import resolve_device

SAMPLE_PATTERN = "sample-*.png"


def generate_images(
    checkpoint: str | Path, n: int, out: str | Path, seed: int = 0, grid: Path | None = None, device: str = "auto", overwrite: bool = False
) -> list[Path]:
    """Sample `n` images with `seed` and write them as out/sample-00000.png ...; returns the paths.

    Earlier samples in `out` are never silently mixed with or replaced by new ones: without
    `overwrite` they are refused, with it they are removed first."""
    out = Path(out)
    earlier = sorted(out.glob(SAMPLE_PATTERN)) if out.is_dir() else []
    if earlier and not overwrite:
        raise GanzooError(f"{out} already holds {len(earlier)} {SAMPLE_PATTERN} file(s) from an earlier run; choose another --out or pass --overwrite")
    gan = load_checkpoint(checkpoint, device=resolve_device(device))
    images = to_uint8(gan.sample(n, seed=seed))
    for path in earlier:
        path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = out / f"sample-{i:05d}.png"
        write_png(path, image)
        paths.append(path)
    if grid is not None:
        write_grid(Path(grid), images)
    return paths
