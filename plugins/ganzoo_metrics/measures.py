"""FID, KID, precision/recall and the Inception Score, each computed by torch-fidelity.

Features come from `ganzoo.metrics` (torch-fidelity's InceptionV3 with ganzoo's weights);
here only torch-fidelity's metric functions run on them, with small-sample guards added.
torch-fidelity is imported inside the functions, so registering these costs nothing.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
import torch

from ganzoo.errors import GanzooError
from ganzoo.metrics import FID_UNBIASED_MIN, KID_SUBSET_SIZE, LOGITS, POOL, Features, Metric

FID_CROSSCHECK_RTOL = 1e-3
PRC_FULL_MAX = 4096


def fid_low_rank(fake: torch.Tensor, real: torch.Tensor) -> float:
    """FID from features through the nuclear norm of the cross-Gram matrix (exact, float64).

    tr sqrt(S1 S2) is the sum of singular values of Xc Yc^T / sqrt((n1-1)(n2-1)), so no
    2048x2048 eigenproblem is needed: cheap exactly when the sample counts are small.
    """
    x, y = fake.double().numpy(), real.double().numpy()
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    n1, n2 = len(x), len(y)
    trace_covmean = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    return float(((mx - my) ** 2).sum() + (xc**2).sum() / (n1 - 1) + (yc**2).sum() / (n2 - 1) - 2 * trace_covmean)


def compute_fid(fake: Features, real: Features | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's FID; below 2048 images per side it warns, and cross-checks the value."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    assert real is not None
    f, r = fake[POOL], real[POOL]
    value = fid_statistics_to_metric(fid_features_to_statistics(f), fid_features_to_statistics(r), False)[KEY_METRIC_FID]
    result: dict[str, Any] = {"value": value}
    if not math.isfinite(value):
        raise GanzooError(f"FID came out as {value}; the features hold NaN/Inf")
    if min(len(f), len(r)) < FID_UNBIASED_MIN:
        message = (
            f"FID with {len(f)} generated / {len(r)} real images (< {FID_UNBIASED_MIN} per side) is biased upwards "
            "and noisy: compare it only at equal sample counts, and look at KID"
        )
        warnings.warn(message, stacklevel=2)
        result["warning"] = message
        exact = fid_low_rank(f, r)
        scale = max(1.0, abs(exact), float(torch.var(r.double(), dim=0).sum()) * 1e-3)
        if abs(value - exact) > FID_CROSSCHECK_RTOL * scale:
            raise GanzooError(
                f"FID is numerically unreliable here: torch-fidelity's eigenvalue route gives {value:.6g}, "
                f"the exact low-rank route {exact:.6g} (a complex square root was dropped)"
            )
    return result


def compute_kid(fake: Features, real: Features | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's KID (polynomial kernel); the subset size is min(1000, n) so small sets work."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    assert real is not None
    f, r = fake[POOL], real[POOL]
    subset = int(options.get("kid_subset_size") or min(KID_SUBSET_SIZE, len(f), len(r)))
    subsets = int(options.get("kid_subsets", 100))
    out = kid_features_to_metric(f, r, kid_subsets=subsets, kid_subset_size=subset, rng_seed=int(options.get("rng_seed", 2020)), verbose=False)
    return {"value": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "subset_size": subset, "subsets": subsets}


def compute_prc(fake: Features, real: Features | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's precision/recall (k-NN manifolds, k=3): precision of generated, recall of real."""
    from torch_fidelity.metric_prc import KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    assert real is not None
    f, r = fake[POOL], real[POOL]
    k = int(options.get("prc_neighborhood", 3))
    if min(len(f), len(r)) <= k:
        raise GanzooError(f"precision-recall with k={k} neighbours needs more than {k} images per side, got {len(f)} generated, {len(r)} real")
    out = prc_features_to_metric(f, r, prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=max(len(f), len(r)) > PRC_FULL_MAX, verbose=False)
    return {
        "precision": out[KEY_METRIC_PRECISION],
        "recall": out[KEY_METRIC_RECALL],
        "f_score": out[KEY_METRIC_F_SCORE],
        "neighborhood": k,
    }


def compute_isc(fake: Features, real: Features | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's Inception Score; only reachable with weights that have the classifier head."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    splits = int(options.get("isc_splits", 10))
    out = isc_features_to_metric(fake[LOGITS], splits, True, int(options.get("rng_seed", 2020)))
    return {"value": out[KEY_METRIC_ISC_MEAN], "std": out[KEY_METRIC_ISC_STD], "splits": splits}


METRICS: dict[str, Metric] = {
    "fid": Metric(compute_fid, "Frechet Inception Distance (TF-Inception 2015-12-05 pool features, torch-fidelity)"),
    "kid": Metric(compute_kid, "Kernel Inception Distance, mean and std over subsets (torch-fidelity)"),
    "precision-recall": Metric(compute_prc, "Improved precision/recall, k=3 (torch-fidelity prc)", min_samples=4),
    "isc": Metric(
        compute_isc,
        "Inception Score; needs torch-fidelity's original weights (not the offline ones)",
        fake_layers=(LOGITS,),
        needs_real=False,
        needs_classifier=True,
        min_samples=10,
    ),
}
