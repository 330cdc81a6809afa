"""Nearest training images, and the statistics of distances to them.

Distances are exact (brute force, float64, in blocks of queries), so a copy's distance is
zero up to rounding and no approximate index can miss a neighbour. A training index has
several rows per image (`features.FeatureSpace.index`); an image's distance is the smallest
over its rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

BLOCK_ENTRIES = 1 << 23  # distances held at once: 8M float64 (64 MB)
# A held-out image closer to a training image than this share of the median held-out distance
# is that image again (the same X-ray under two names, a leak in the split), not a new one.
DUPLICATE_RATIO = 0.2


@dataclass
class Neighbours:
    """For each query image: its k nearest training images, closest first, and the data-copying
    test's cell: that of its nearest training image."""

    distances: np.ndarray  # (n, k)
    indices: np.ndarray  # (n, k)
    cells: np.ndarray | None = None  # (n,)

    def __len__(self) -> int:
        return int(self.distances.shape[0])

    @property
    def dcr(self) -> np.ndarray:
        """Distance to the closest record (training image)."""
        return self.distances[:, 0]

    @property
    def nndr(self) -> np.ndarray:
        """Nearest-neighbour distance ratio d1/d2 (0 where both are 0: a copy of a duplicated image)."""
        if self.distances.shape[1] < 2:
            return np.full(len(self), np.nan)
        d1, d2 = self.distances[:, 0], self.distances[:, 1]
        return np.divide(d1, d2, out=np.zeros_like(d1), where=d2 > 0)

    def take(self, rows: np.ndarray | Sequence[int]) -> "Neighbours":
        rows = np.asarray(rows, dtype=np.int64)
        return Neighbours(self.distances[rows], self.indices[rows], None if self.cells is None else self.cells[rows])

    @staticmethod
    def concat(parts: Sequence["Neighbours"]) -> "Neighbours":
        cells = None if any(p.cells is None for p in parts) else np.concatenate([p.cells for p in parts])
        return Neighbours(np.concatenate([p.distances for p in parts]), np.concatenate([p.indices for p in parts]), cells)


def nearest(query: np.ndarray, index: np.ndarray, k: int, exclude_self: bool = False, training_cells: np.ndarray | None = None) -> Neighbours:
    """The k nearest training images of each query row. `index` is (variants, n_train, dim);
    `exclude_self` when the queries are the training images themselves (row i is image i);
    with `training_cells`, each query gets the cell of its nearest training image."""
    variants, n_train, dim = index.shape
    k = max(1, min(k, n_train - int(exclude_self)))
    rows = index.reshape(variants * n_train, dim)
    squares = np.einsum("ij,ij->i", rows, rows)
    n = len(query)
    distances, indices = np.zeros((n, k)), np.zeros((n, k), dtype=np.int64)
    block = max(1, BLOCK_ENTRIES // max(1, variants * n_train))
    for start in range(0, n, block):
        q = query[start : start + block]
        d2 = np.einsum("ij,ij->i", q, q)[:, None] + squares[None, :] - 2.0 * (q @ rows.T)
        d = np.sqrt(np.maximum(d2, 0.0)).reshape(len(q), variants, n_train).min(axis=1)
        if exclude_self:
            d[np.arange(len(q)), start + np.arange(len(q))] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < n_train else np.tile(np.arange(n_train), (len(q), 1))
        order = np.take_along_axis(d, part, axis=1).argsort(axis=1, kind="stable")
        indices[start : start + len(q)] = np.take_along_axis(part, order, axis=1)
        distances[start : start + len(q)] = np.take_along_axis(d, indices[start : start + len(q)], axis=1)
    return Neighbours(distances, indices, None if training_cells is None else training_cells[indices[:, 0]])


def calibrated_threshold(held_out_dcr: np.ndarray, q: float) -> dict[str, Any]:
    """The flag threshold: the r-th smallest held-out distance, r = floor(q * (n + 1)).

    A new real image the model never saw (exchangeable with the held-out ones) falls strictly
    below it with probability at most r / (n + 1) <= q: the false-alarm rate, by construction.
    With fewer than 1/q - 1 held-out images r would be 0; the smallest distance is used and the
    bound 1 / (n + 1), above q, is what the report states.
    """
    values = np.sort(np.asarray(held_out_dcr, dtype=np.float64))
    n = len(values)
    if n == 0:
        return {"value": 0.0, "q": q, "rank": 0, "n_held_out": 0, "false_alarm_bound": None, "note": "no held-out images: nothing can be flagged"}
    rank = math.floor(q * (n + 1))
    note = ""
    if rank < 1:
        rank = 1
        note = f"{n} held-out images are too few for q = {q:g} (at least {math.ceil(1 / q - 1)} needed): the threshold is their smallest distance, a false-alarm rate of up to {1 / (n + 1):.3g}"
    return {"value": float(values[rank - 1]), "q": q, "rank": rank, "n_held_out": n, "false_alarm_bound": rank / (n + 1), "note": note}


def wilson(count: int, n: int, z: float = 1.959964) -> list[float] | None:
    """95% Wilson score interval of a proportion (sound at 0 and n, unlike the normal one)."""
    if n == 0:
        return None
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def share(mask: np.ndarray) -> dict[str, Any]:
    """A proportion with its count, sample size and 95% interval."""
    count, n = int(np.count_nonzero(mask)), int(len(mask))
    return {"count": count, "n": n, "rate": count / n if n else None, "ci95": wilson(count, n)}


def summary(values: np.ndarray) -> dict[str, Any]:
    """A distance distribution in a few numbers (with its sample size)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"n": 0}
    quantiles = np.quantile(values, [0.01, 0.05, 0.25, 0.5, 0.75])
    return {"n": int(len(values)), "min": float(values.min()), "p01": float(quantiles[0]), "p05": float(quantiles[1]), "p25": float(quantiles[2]),
            "median": float(quantiles[3]), "p75": float(quantiles[4]), "mean": float(values.mean()), "max": float(values.max())}


def unauthentic(neighbours: Neighbours, training_nn: np.ndarray) -> np.ndarray:
    """Alaa et al. 2022: an image is unauthentic when it is closer to its nearest training image
    than that training image is to its own nearest other training image."""
    return neighbours.dcr < training_nn[neighbours.indices[:, 0]]
