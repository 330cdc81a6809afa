"""The data-copying test C_T of Meehan, Chaudhuri and Dasgupta (AISTATS 2020).

The instance space is cut into cells by k-means on the training images (after PCA): a cell is
the region closer to that cluster's training images than to any other training image, so the
partition depends on the training images alone, a point's distance to the training images of
its cell is its distance to the nearest training image, and a copy shifted by a pixel (which
the `pixels` space forgives) stays in its original's cell. In each cell, the distances of
generated images to the training images are compared with those of held-out real images by a
Mann-Whitney U test, Z-scored under the null
(same distribution; with the paper's continuity correction). C_T is the average of the
cells' Z_U weighted by each cell's share of the held-out images, over the cells holding more
than `MIN_GENERATED` generated images (the paper's tau = 20 / m) and at least
`MIN_HELD_OUT` held-out ones. C_T << 0: generated images sit closer to the training images
than real new images do (copying); C_T >> 0: farther (underfitting).

Its size grows with the samples per cell: with a share r of exact copies, each cell's Z_U is
about -r * sqrt(3 m n / (m + n)) for m generated and n held-out images in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .distances import Neighbours

PCA_DIMS = 64
MIN_GENERATED = 20
MIN_HELD_OUT = 10


@dataclass
class Partition:
    """The cell of each training image (k-means on the first principal components)."""

    training_cells: np.ndarray
    n_cells: int


def partition(training: np.ndarray, cells: int, seed: int = 0) -> Partition:
    """k-means cells (at most one per training image) of the training rows' first principal components.

    One thread: the problem is small, and OpenMP threads spinning on a busy machine made it 50x slower."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    dims = max(1, min(PCA_DIMS, training.shape[1], len(training) - 1))
    with threadpool_limits(1):
        reduced = PCA(n_components=dims, random_state=seed).fit_transform(training)
        kmeans = KMeans(n_clusters=max(1, min(cells, len(training))), n_init=10, random_state=seed).fit(reduced)
    return Partition(kmeans.labels_.astype(np.int64), int(kmeans.n_clusters))


def z_u(generated: np.ndarray, held_out: np.ndarray) -> float:
    """Mann-Whitney U of generated vs held-out distances, Z-scored under the null (Meehan et al.'s form)."""
    from scipy.stats import mannwhitneyu

    m, n = len(generated), len(held_out)
    u = float(mannwhitneyu(generated, held_out, alternative="less").statistic)
    return (u - (m * n / 2 - 0.5)) / math.sqrt(m * n * (m + n + 1) / 12)


def data_copying_test(generated: Neighbours, held_out: Neighbours, n_cells: int) -> dict[str, Any]:
    """C_T from the distances and cells of `Neighbours`, with every cell's counts and Z_U."""
    assert generated.cells is not None and held_out.cells is not None, "neighbours without cells"
    m, n = len(generated), len(held_out)
    rows, used_weights, used_z = [], [], []
    for cell in range(n_cells):
        gen = generated.dcr[generated.cells == cell]
        held = held_out.dcr[held_out.cells == cell]
        row: dict[str, Any] = {"cell": cell, "n_generated": int(len(gen)), "n_held_out": int(len(held)), "held_out_share": len(held) / n if n else 0.0}
        if len(gen) <= MIN_GENERATED or len(held) < MIN_HELD_OUT:
            row["dropped"] = f"needs > {MIN_GENERATED} generated and >= {MIN_HELD_OUT} held-out images"
        else:
            row["z_u"] = z_u(gen, held)
            used_weights.append(row["held_out_share"])
            used_z.append(row["z_u"])
        rows.append(row)
    result: dict[str, Any] = {"cells": rows, "n_cells": n_cells, "n_generated": m, "n_held_out": n, "min_generated": MIN_GENERATED, "min_held_out": MIN_HELD_OUT}
    if not used_z:
        return {**result, "value": None, "note": "no cell had enough samples; C_T needs more generated and held-out images (or fewer --cells)"}
    weights = np.asarray(used_weights)
    value = float(np.dot(weights, used_z) / weights.sum())
    return {**result, "value": value, "cells_used": len(used_z), "held_out_covered": float(weights.sum())}
