"""FID, KID, precision/recall and the Inception Score: metrics on Inception features.

Each is a `Metric` (images in, {"value", extras} out). The shared `InceptionMetric` base gets
the generated images' features once per `evaluate()` call (through `context.scratch`, so FID,
KID and precision/recall share one extraction), the real ones through the on-disk cache, and
records the feature extractor's provenance with every result. torch-fidelity computes the
numbers; it is imported inside the functions, so registering these costs nothing.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Mapping

import numpy as np
import torch

from ganzoo.api import FeatureExtractor, GanzooError, ImageSet, Metric, MetricContext, get_feature_extractor

from .features import cached_features, features_for, inception_extractor
from .weights import LOGITS, POOL, require_torch_fidelity

FID_UNBIASED_MIN = 2048
KID_SUBSET_SIZE = 1000
FID_CROSSCHECK_RTOL = 1e-3
PRC_FULL_MAX = 4096
FEATURE_SPACE = "inception"


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


class InceptionMetric(Metric):
    """A metric of Inception features: subclasses implement `measure(fake, real, options)`.

    `layer` is the torch-fidelity layer measured (pool features unless the head's logits);
    `classifier` asks for weights with the classifier head.
    """

    layer: str = POOL
    classifier: bool = False

    def extractor(self) -> FeatureExtractor:
        """The registered "inception" feature space, or the classifier-head variant."""
        return inception_extractor(classifier=True) if self.classifier else get_feature_extractor(FEATURE_SPACE)

    def ready(self) -> None:
        require_torch_fidelity()
        self.extractor().ready()

    def measure(self, fake: torch.Tensor, real: torch.Tensor | None, options: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def score(self, fake: torch.Tensor, real: torch.Tensor | None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The numbers from features (float32 (N, D)); NaN/Inf features are an error, never a score."""
        for label, features in (("generated", fake), ("real", real)):
            if features is not None and not bool(torch.isfinite(features).all()):
                raise GanzooError(f"{label} Inception features ({self.layer}) hold NaN/Inf; no metric is computed from them")
        return self.measure(fake, real, dict(options or {}))

    def compute(self, fake: torch.Tensor, real: ImageSet | None, context: MetricContext) -> dict[str, Any]:
        extractor = self.extractor()
        identity = extractor.identity()
        shared = context.scratch.setdefault(f"{FEATURE_SPACE}:{identity}:{self.layer}", {})
        extraction: dict[str, Any] = {"images": 0, "seconds": 0.0}
        start = time.perf_counter()
        if shared.get("fake", (None,))[0] is not fake:
            if self.layer == POOL:
                features, extracted = features_for(fake, extractor, identity, context.device, context.batch_size)
            else:
                features = extractor.extract_layers(fake, context.device, context.batch_size, (self.layer,), "generated")[self.layer]
                extracted = True
            shared["fake"] = (fake, features)
            extraction["images"] += len(fake) if extracted else 0
        fake_features = shared["fake"][1]
        real_features = None
        if self.needs_real and real is not None:
            if shared.get("real", (None,))[0] is not real:
                features, cached = cached_features(real, extractor, context.device, context.batch_size)
                shared["real"] = (real, features, cached)
                extraction["images"] += 0 if cached else len(real)
            real_features = shared["real"][1]
            extraction["real_cached"] = shared["real"][2]
        extraction["seconds"] = time.perf_counter() - start if extraction["images"] else 0.0
        result = self.score(fake_features, real_features, context.options)
        return {**result, "features": extractor.describe(), "extraction": extraction}


def compute_fid(fake: torch.Tensor, real: torch.Tensor, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's FID; below 2048 images per side it warns, and cross-checks the value."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    value = fid_statistics_to_metric(fid_features_to_statistics(fake), fid_features_to_statistics(real), False)[KEY_METRIC_FID]
    result: dict[str, Any] = {"value": value}
    if not math.isfinite(value):
        raise GanzooError(f"FID came out as {value}; the features hold NaN/Inf")
    if min(len(fake), len(real)) < FID_UNBIASED_MIN:
        message = (
            f"FID with {len(fake)} generated / {len(real)} real images (< {FID_UNBIASED_MIN} per side) is biased upwards "
            "and noisy: compare it only at equal sample counts, and look at KID"
        )
        warnings.warn(message, stacklevel=2)
        result["warning"] = message
        exact = fid_low_rank(fake, real)
        scale = max(1.0, abs(exact), float(torch.var(real.double(), dim=0).sum()) * 1e-3)
        if abs(value - exact) > FID_CROSSCHECK_RTOL * scale:
            raise GanzooError(
                f"FID is numerically unreliable here: torch-fidelity's eigenvalue route gives {value:.6g}, "
                f"the exact low-rank route {exact:.6g} (a complex square root was dropped)"
            )
    return result


def compute_kid(fake: torch.Tensor, real: torch.Tensor, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's KID (polynomial kernel); the subset size is min(1000, n) so small sets work."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    subset = int(options.get("kid_subset_size") or min(KID_SUBSET_SIZE, len(fake), len(real)))
    subsets = int(options.get("kid_subsets", 100))
    out = kid_features_to_metric(fake, real, kid_subsets=subsets, kid_subset_size=subset, rng_seed=int(options.get("rng_seed", 2020)), verbose=False)
    return {"value": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "subset_size": subset, "subsets": subsets}


def compute_prc(fake: torch.Tensor, real: torch.Tensor, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's precision/recall (k-NN manifolds, k=3); "value" is their F-score."""
    from torch_fidelity.metric_prc import KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    k = int(options.get("prc_neighborhood", 3))
    if min(len(fake), len(real)) <= k:
        raise GanzooError(f"precision-recall with k={k} neighbours needs more than {k} images per side, got {len(fake)} generated, {len(real)} real")
    out = prc_features_to_metric(fake, real, prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=max(len(fake), len(real)) > PRC_FULL_MAX, verbose=False)
    f_score = out[KEY_METRIC_F_SCORE]
    return {"value": f_score, "precision": out[KEY_METRIC_PRECISION], "recall": out[KEY_METRIC_RECALL], "f_score": f_score, "neighborhood": k}


def compute_isc(fake: torch.Tensor, real: torch.Tensor | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """torch-fidelity's Inception Score from the classifier head's logits."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    splits = int(options.get("isc_splits", 10))
    out = isc_features_to_metric(fake, splits, True, int(options.get("rng_seed", 2020)))
    return {"value": out[KEY_METRIC_ISC_MEAN], "std": out[KEY_METRIC_ISC_STD], "splits": splits}


class FID(InceptionMetric):
    description = "Frechet Inception Distance (TF-Inception 2015-12-05 pool features, torch-fidelity)"

    def measure(self, fake: torch.Tensor, real: torch.Tensor | None, options: Mapping[str, Any]) -> dict[str, Any]:
        assert real is not None
        return compute_fid(fake, real, options)


class KID(InceptionMetric):
    description = "Kernel Inception Distance, mean and std over subsets (torch-fidelity)"

    def measure(self, fake: torch.Tensor, real: torch.Tensor | None, options: Mapping[str, Any]) -> dict[str, Any]:
        assert real is not None
        return compute_kid(fake, real, options)


class PrecisionRecall(InceptionMetric):
    description = "Improved precision/recall, k=3 (torch-fidelity prc); value = F-score"
    min_samples = 4
    lower_is_better = False

    def measure(self, fake: torch.Tensor, real: torch.Tensor | None, options: Mapping[str, Any]) -> dict[str, Any]:
        assert real is not None
        return compute_prc(fake, real, options)


class InceptionScore(InceptionMetric):
    description = "Inception Score; needs torch-fidelity's original weights (not the offline ones)"
    needs_real = False
    min_samples = 10
    lower_is_better = False
    layer = LOGITS
    classifier = True

    def measure(self, fake: torch.Tensor, real: torch.Tensor | None, options: Mapping[str, Any]) -> dict[str, Any]:
        return compute_isc(fake, real, options)


METRICS: dict[str, InceptionMetric] = {
    "fid": FID(),
    "kid": KID(),
    "precision-recall": PrecisionRecall(),
    "isc": InceptionScore(),
}
