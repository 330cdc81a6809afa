"""The `frd` metric: the Frechet distance between real and generated images' radiomic features.

As frd-score's FRDv1 (`compute_frd([real, generated])`): images with a NaN feature are
dropped, features are cast to float32, z-scored with the *real* set's mean and std
(population std), features that are then NaN or infinite in either set (constant in the real
set) are dropped, and the Frechet distance d^2 of the two Gaussians is taken. frd-score reports
log(d^2); here `value` is d^2 itself, which is 0 for identical sets where log(d^2) is minus
infinity, and `log_value` is frd-score's number (None when d^2 is 0 up to rounding). Both rank
models the same way.

d^2 is computed exactly in float64 through the singular values of the n_fake x n_real
cross-product of the centred features (as the Inception FID's low-rank check does), so no
eigenproblem of a rank-deficient covariance is involved.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ganzoo.api import GanzooError, ImageSet, Metric, MetricContext

from . import cache
from .features import PACKAGES, as_gray, config_path, extract, identity, package_versions, require_radiomics, worker_count

ZERO_RTOL = 1e-9  # d^2 below this fraction of the total variance is rounding: log(d^2) is not reported


def frechet_distance(fake: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """(d^2, total variance) of two feature sets (n, D), exactly, in float64.

    tr sqrt(S1 S2) is the sum of the singular values of Xc Yc^T / sqrt((n1-1)(n2-1)).
    """
    x, y = fake.astype(np.float64), real.astype(np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    n1, n2 = len(x), len(y)
    variance = float((xc**2).sum() / (n1 - 1) + (yc**2).sum() / (n2 - 1))
    cross = float(np.linalg.svd(xc @ yc.T, compute_uv=False).sum()) / math.sqrt((n1 - 1) * (n2 - 1))
    return float(((mx - my) ** 2).sum()) + variance - 2.0 * cross, variance


def _complete_rows(features: np.ndarray, label: str) -> tuple[np.ndarray, int]:
    """frd-score drops an image with any NaN feature, then casts to float32 (its v1 pipeline does)."""
    complete = ~np.isnan(features).any(axis=1)
    kept = features[complete].astype(np.float32).astype(np.float64)
    if len(kept) < 2:
        raise GanzooError(f"frd needs at least 2 {label} images with radiomic features, got {len(kept)} of {len(features)}")
    return kept, int((~complete).sum())


def frd_from_features(fake: np.ndarray, real: np.ndarray, names: list[str] | None = None) -> dict[str, Any]:
    """FRD of raw radiomic features (n, D): z-scored against `real`, constant features dropped."""
    fake, fake_dropped = _complete_rows(fake, "generated")
    real, real_dropped = _complete_rows(real, "real")
    mean, std = real.mean(axis=0), real.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_fake, z_real = (fake - mean) / std, (real - mean) / std
    keep = np.isfinite(z_fake).all(axis=0) & np.isfinite(z_real).all(axis=0)
    if not keep.any():
        raise GanzooError("frd: every radiomic feature is constant across the real images; there is nothing to compare")
    d2, variance = frechet_distance(z_fake[:, keep], z_real[:, keep])
    value = max(d2, 0.0)
    n_features = int(keep.sum())
    result: dict[str, Any] = {
        "value": value,
        "log_value": math.log(value) if value > ZERO_RTOL * variance else None,
        "n_features": n_features,
        "n_features_extracted": int(keep.size),
        "dropped": {"constant_features": int((~keep).sum()), "generated_images": fake_dropped, "real_images": real_dropped},
    }
    notes = []
    if fake_dropped or real_dropped:
        notes.append(
            f"{fake_dropped} generated and {real_dropped} real images have no radiomic features (a flat image, or NaN) "
            "and are left out (frd-score drops images with NaN features): FRD describes only the others"
        )
    if names is not None:
        kept = [name for name, k in zip(names, keep) if k]
        result["image_types"] = sorted({name.split("_")[0] for name in kept if not name.startswith("diagnostics")})
        result["feature_classes"] = sorted({name.split("_")[1] for name in kept if not name.startswith("diagnostics")})
    if min(len(fake), len(real)) <= n_features:
        notes.append(
            f"{len(fake)} generated / {len(real)} real images for {n_features} features: the covariances are "
            "rank-deficient, so compare FRD only at equal sample counts (and beside the real-vs-real baseline)"
        )
    if notes:
        result["warning"] = "; ".join(notes)
    return result


def _real_features(real: ImageSet, images: np.ndarray, ident: str, workers: int) -> tuple[np.ndarray, list[str], int]:
    """The real set's features from memory, the cache, or extracted now: (features, names, images extracted)."""
    known = cache.recall(images, ident)
    if known is not None:
        return *known, 0
    key = cache.real_key(images, ident)
    loaded = cache.load(key, len(images), ident)
    extracted = 0
    if loaded is None:
        features, names, _ = extract(images, workers)
        cache.store(key, real, features, names, ident)
        loaded, extracted = (features, names), len(images)
    cache.remember(images, *loaded, ident)
    return *loaded, extracted


class FRD(Metric):
    description = "Frechet Radiomic Distance, FRDv1 features of frd-score + pyradiomics (value d^2; log_value = frd-score's log FRD)"
    min_samples = 2
    lower_is_better = True
    requirements = PACKAGES

    def ready(self) -> None:
        require_radiomics()

    def compute(self, fake: Any, real: ImageSet | None, context: MetricContext) -> dict[str, Any]:
        if real is None:
            raise GanzooError("frd needs real images")
        workers = worker_count(context.options.get("frd_workers"))
        ident = identity()
        fake_images, real_images = as_gray(fake), as_gray(real.images)
        start = time.perf_counter()
        real_features, real_names, real_extracted = _real_features(real, real_images, ident, workers)
        known = cache.recall(fake_images, ident)
        fake_features, fake_names = known if known is not None else extract(fake_images, workers)[:2]
        seconds = time.perf_counter() - start
        if fake_names != real_names:
            raise GanzooError("frd: pyradiomics gave the generated and the real images different sets of features")
        extracted = real_extracted + (0 if known is not None else len(fake_images))
        result = frd_from_features(fake_features, real_features, real_names)
        result["radiomics"] = {
            "identity": ident,
            "config": config_path().name,
            "versions": package_versions(),
            "extracted_images": extracted,
            "seconds": seconds,
            "images_per_s": extracted / seconds if extracted and seconds > 0 else None,
            "workers": workers,
            "real_cached": real_extracted == 0,
        }
        return result


FRD_METRIC = FRD()
