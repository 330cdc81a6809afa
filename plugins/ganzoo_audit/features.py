"""The feature spaces an audit measures distances in.

`pixels`: the preprocessed (CLAHE'd) pixels, each image standardised (zero mean, unit
variance, so a brightness or contrast change does not hide a copy), projected on the training
images' first principal components; every training image is also indexed shifted by up to
`SHIFT` pixels in each direction (edge pixels repeated), so a copy moved by a pixel or two is
still next to its original. Any registered feature extractor (`inception`, ...) is the other
kind: its features as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganzoo.api import FeatureExtractor, GanzooError, get_feature_extractor, registry

PIXELS = "pixels"
PIXEL_COMPONENTS = 64
SHIFT = 2
MAX_PCA_ROWS = 3000  # training images the principal axes are fitted on (a seeded subset beyond)


def flat(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, 1, H, W) -> float64 (N, H*W), each row standardised (a flat image becomes zeros)."""
    rows = images.reshape(len(images), -1).numpy().astype(np.float64)
    rows -= rows.mean(axis=1, keepdims=True)
    return rows / np.maximum(rows.std(axis=1, keepdims=True), 1e-6)


def shifted(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """The images (N, C, H, W) moved by (dx, dy) pixels, the uncovered border filled with the edge pixels."""
    if dx == 0 and dy == 0:
        return images
    pad = max(abs(dx), abs(dy))
    padded = np.pad(images.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    h, w = images.shape[-2:]
    return torch.from_numpy(np.ascontiguousarray(padded[..., pad - dy : pad - dy + h, pad - dx : pad - dx + w]))


class Projection:
    """PCA: the training rows' mean and first principal axes. Fitted through the n x n Gram
    matrix (n <= dim here), exact and much faster than a randomized SVD of an n x 4096 matrix."""

    def __init__(self, rows: np.ndarray, components: int) -> None:
        self.mean = rows.mean(axis=0)
        centred = rows - self.mean
        from scipy.linalg import eigh  # only the top eigenpairs; numpy's full eigh also stalls on a busy machine

        n = len(centred)
        values, vectors = eigh(centred @ centred.T, subset_by_index=[n - components, n - 1])
        values, vectors = np.maximum(values[::-1], 1e-12), vectors[:, ::-1]
        self.axes = (centred.T @ vectors) / np.sqrt(values)  # (dim, components), orthonormal columns
        self.explained = float(values.sum() / max(np.einsum("ij,ij->", centred, centred), 1e-12))

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return (rows - self.mean) @ self.axes


class FeatureSpace:
    """Fitted on the training images; then `embed` maps images to rows and `index()` gives the
    training rows to search, shaped (variants, n_training, dim), variant 0 unshifted."""

    name: str = ""

    def fit(self, training: torch.Tensor) -> None:
        raise NotImplementedError

    def embed(self, images: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def index(self) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


class PixelSpace(FeatureSpace):
    """Standardised pixels after PCA, with a shift-tolerant training index."""

    name = PIXELS

    def __init__(self, seed: int = 0, components: int = PIXEL_COMPONENTS, shift: int = SHIFT) -> None:
        self.seed, self.components, self.shift = seed, components, shift
        self.pca: Projection | None = None
        self._index: np.ndarray | None = None

    def fit(self, training: torch.Tensor) -> None:
        rows = flat(training)
        if len(rows) > MAX_PCA_ROWS:
            rows = rows[np.sort(np.random.default_rng(self.seed).choice(len(rows), MAX_PCA_ROWS, replace=False))]
        self.pca = Projection(rows, max(1, min(self.components, len(rows) - 1, rows.shape[1])))
        offsets = [(0, 0)] + [(dx, dy) for dy in range(-self.shift, self.shift + 1) for dx in range(-self.shift, self.shift + 1) if dx or dy]
        self._index = np.stack([self.embed(shifted(training, dx, dy)) for dx, dy in offsets])

    def embed(self, images: torch.Tensor) -> np.ndarray:
        if self.pca is None:
            raise GanzooError("the pixel space is not fitted to training images yet")
        return self.pca(flat(images))

    def index(self) -> np.ndarray:
        assert self._index is not None, "fit() first"
        return self._index

    def describe(self) -> dict[str, Any]:
        return {
            "name": PIXELS,
            "description": "CLAHE'd pixels, each image standardised, PCA on the training images; training images indexed at every shift up to shift_px",
            "components": int(self.pca.axes.shape[1]) if self.pca is not None else None,
            "explained_variance": self.pca.explained if self.pca is not None else None,
            "shift_px": self.shift,
        }


class ExtractorSpace(FeatureSpace):
    """A registered feature extractor's features, as they are (no shifts: Inception is nearly shift-invariant)."""

    def __init__(self, name: str, extractor: FeatureExtractor, device: torch.device, batch_size: int) -> None:
        self.name, self.extractor, self.device, self.batch_size = name, extractor, device, batch_size
        self._index: np.ndarray | None = None

    def fit(self, training: torch.Tensor) -> None:
        self._index = self.embed(training)[None]

    def embed(self, images: torch.Tensor) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self._index.shape[-1] if self._index is not None else 0))
        return self.extractor.extract(images, self.device, self.batch_size).cpu().numpy().astype(np.float64)

    def index(self) -> np.ndarray:
        assert self._index is not None, "fit() first"
        return self._index

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.extractor.description, **self.extractor.describe()}


def feature_space(name: str, device: torch.device, batch_size: int = 64, seed: int = 0) -> FeatureSpace:
    """`pixels`, or a registered feature extractor by name (checked to be usable here)."""
    if name == PIXELS:
        return PixelSpace(seed=seed)
    if name not in registry("features"):
        known = ", ".join([PIXELS, *registry("features").list()])
        raise GanzooError(f"unknown feature space {name!r}; known: {known}")
    extractor = get_feature_extractor(name)
    extractor.ready()
    return ExtractorSpace(name, extractor, device, batch_size)
