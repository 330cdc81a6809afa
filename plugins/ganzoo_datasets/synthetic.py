"""The `synthetic-cxr` dataset: procedural chest-radiograph phantoms, no patient data."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ganzoo.api import DataError, DatasetOptions, ImageSet, preprocess

from .phantoms import LABELS, render_phantoms

SYNTHETIC_DEFAULT_COUNT = 512


def load_synthetic_cxr(options: DatasetOptions) -> ImageSet:
    """Procedural chest-radiograph phantoms: synthetic, deterministic per seed."""
    if options.path:
        raise DataError("dataset 'synthetic-cxr' is generated and takes no --data path")
    if options.label is not None and options.label not in LABELS:
        raise DataError(f"synthetic-cxr has labels {', '.join(LABELS)}; got --label {options.label!r}")
    count = options.max_images or SYNTHETIC_DEFAULT_COUNT
    prep = options.preprocessing
    raw, labels = render_phantoms(count, prep.resolution, seed=options.seed, label=options.label)
    images = np.stack([preprocess(image, prep) for image in raw])
    fingerprint = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    return ImageSet(
        name="synthetic-cxr",
        synthetic=True,
        images=torch.from_numpy(images).unsqueeze(1),
        fingerprint=fingerprint,
        files=[f"phantom-{i:05d}" for i in range(count)],
        labels=list(labels),
    )
