"""Sampling images from a checkpoint to PNG (8 or 16 bits) or DICOM files, each with provenance.

Every image gets a JSON sidecar (same name, `.json`) naming the model's sha256, the seed, the
image's index and `synthetic: true`, so a generated image is never mistaken for a real one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import WEIGHTS_FILE, load_gan
from .errors import GanzooError
from .hub import resolve_checkpoint
from .images import to_uint8, to_uint16, write_grid, write_png
from .paths import atomic_write_text, dump_json, file_sha256
from .runtime import resolve_device
from .synthetic_dicom import require_pydicom, write_secondary_capture
from .version import __version__

FORMATS = ("png", "dicom")
SAMPLE_PATTERN = "sample-*"


def generate_images(
    checkpoint: str | Path, n: int, out: str | Path, seed: int = 0, grid: Path | None = None, device: str = "auto",
    bit_depth: int = 8, format: str = "png", overwrite: bool = False,
) -> list[Path]:
    """Sample `n` images with `seed` and write them as out/sample-00000.png (or .dcm) with a sidecar each; returns the image paths.

    Earlier samples in `out` are never silently mixed with or replaced by new ones: without
    `overwrite` they are refused, with it they are removed first."""
    if bit_depth not in (8, 16):
        raise GanzooError(f"--bit-depth must be 8 or 16, got {bit_depth}")
    if format not in FORMATS:
        raise GanzooError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "dicom":
        require_pydicom()
    out = Path(out)
    earlier = sorted(p for p in out.glob(SAMPLE_PATTERN) if p.suffix in (".png", ".dcm", ".json")) if out.is_dir() else []
    images = [p for p in earlier if p.suffix != ".json"]
    if images and not overwrite:
        raise GanzooError(
            f"{out} already holds {len(images)} sample-*{images[0].suffix} file(s) from an earlier run; choose another --out or pass --overwrite"
        )
    directory = resolve_checkpoint(checkpoint)
    gan = load_gan(directory, device=resolve_device(device))
    model_sha256 = file_sha256(directory / WEIGHTS_FILE)
    raw = gan.sample(n, seed=seed)
    images = to_uint8(raw)
    pixels = to_uint16(raw) if bit_depth == 16 else images.numpy()
    for path in earlier:
        path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = (new_uid(), new_uid()) if format == "dicom" else ("", "")
    paths = []
    for i in range(len(pixels)):
        provenance = {
            "synthetic": True, "model_sha256": model_sha256, "seed": seed, "index": i, "bit_depth": bit_depth,
            "format": format, "generator": f"ganzoo {__version__}", "note": "synthetic image, research use only",
        }
        if format == "png":
            path = out / f"sample-{i:05d}.png"
            write_png(path, pixels[i])
        else:
            path = out / f"sample-{i:05d}.dcm"
            write_secondary_capture(path, np.ascontiguousarray(pixels[i][0]), study_uid, series_uid, i, provenance)
        atomic_write_text(path.with_suffix(".json"), dump_json({**provenance, "file": path.name}))
        paths.append(path)
    if grid is not None:
        write_grid(Path(grid), images)
    return paths


def new_uid() -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid())
