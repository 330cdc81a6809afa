"""From nearest-neighbour distances to the audit's numbers: the calibrated threshold, the
per-sample flags, DCR/NNDR distributions, authenticity and C_T.

Shared by `ganzoo audit` and the planted-copy calibration, so the benchmark measures exactly
what the command computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ganzoo.api import GanzooError

from .copying import Partition, data_copying_test
from .distances import DUPLICATE_RATIO, Neighbours, calibrated_threshold, nearest, share, summary, unauthentic
from .features import FeatureSpace


@dataclass
class Reference:
    """The training side of an audit: the feature space fitted on it, its cells, each training
    image's distance to its nearest other training image, and the calibrated held-out set."""

    space: FeatureSpace
    index: np.ndarray
    cells: Partition
    training_nn: np.ndarray
    held_out: Neighbours
    duplicates: np.ndarray  # held-out images left out as copies of training images (bool)
    threshold: dict[str, Any]
    k: int

    def neighbours(self, rows: np.ndarray) -> Neighbours:
        """Nearest training images (and cells) of embedded rows."""
        return nearest(rows, self.index, self.k, training_cells=self.cells.training_cells)


def reference(space: FeatureSpace, cells: Partition, held_out_rows: np.ndarray, q: float, k: int) -> Reference:
    """Search the held-out images' nearest training images, set aside duplicates of training
    images, and calibrate the flag threshold on the rest."""
    index = space.index()
    training_nn = nearest(index[0], index, 1, exclude_self=True).dcr
    held = nearest(held_out_rows, index, k, training_cells=cells.training_cells)
    duplicates = held.dcr < DUPLICATE_RATIO * float(np.median(held.dcr))
    if (~duplicates).sum() < 2:
        raise GanzooError(f"{int(duplicates.sum())} of {len(held)} held-out images are near-copies of training images: the held-out images must be ones the model never saw")
    kept = held.take(np.flatnonzero(~duplicates))
    return Reference(space, index, cells, training_nn, kept, duplicates, calibrated_threshold(kept.dcr, q), k)


def analyse(ref: Reference, generated: Neighbours) -> dict[str, Any]:
    """Every score of generated vs held-out images, each with its sample counts."""
    flags = generated.dcr < ref.threshold["value"]
    bound = ref.threshold["false_alarm_bound"]
    flagged = share(flags)
    if bound is not None and len(flags):
        from scipy.stats import binomtest

        flagged["expected_by_chance"] = bound * len(flags)
        flagged["p_value"] = float(binomtest(int(flags.sum()), len(flags), min(1.0, bound), alternative="greater").pvalue)
    return {
        "flags": flags,
        "flagged": flagged,
        "threshold": ref.threshold,
        "distances": {
            "generated": {"dcr": summary(generated.dcr), "nndr": summary(generated.nndr)},
            "held_out": {"dcr": summary(ref.held_out.dcr), "nndr": summary(ref.held_out.nndr)},
            "training_to_training": {"dcr": summary(ref.training_nn)},
        },
        "copying": data_copying_test(generated, ref.held_out, ref.cells.n_cells),
        "authenticity": {
            "generated_unauthentic": share(unauthentic(generated, ref.training_nn)),
            "held_out_unauthentic": share(unauthentic(ref.held_out, ref.training_nn)),
        },
    }
