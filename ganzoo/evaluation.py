"""The metric and feature-extractor contracts, and scoring a GAN's samples with registered metrics.

A metric takes uint8 images (N, C, H, W) and returns `{"value": number, extras...}`; this
module adds the sample counts, rejects NaN/Inf, and records which real images were used.
How a metric works (Inception features, pixels, radiomics) is the plugin's business.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from .config import default_dataset
from .data import DatasetOptions, ImageSet, Preprocessing, load_dataset
from .errors import GanzooError
from .images import to_uint8
from .models import GAN
from .plugins import registry
from .runtime import environment_versions, resolve_device
from .splits import NoHoldout, check_split_unchanged, warn_if_training_images


@dataclass
class MetricContext:
    """What every metric of one evaluation shares: device, seed, options, and a scratch space
    (e.g. generated-image features extracted once for FID, KID and precision/recall)."""

    device: torch.device
    seed: int = 0
    batch_size: int = 64
    options: Mapping[str, Any] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)


class Metric:
    """What a plugin registers as a metric: `compute(fake, real, context)` -> {"value": ..., extras}.

    `fake` is uint8 (N, C, H, W); `real` is an ImageSet (None when `needs_real` is False).
    `ready()` raises a GanzooError when the metric cannot run here (a missing package or
    weights), so training with `--eval-every` fails before it starts, not hours later.
    `lower_is_better` tells the trainer which checkpoint is the best; the versions of the
    distributions named in `requirements` are saved with every score.
    """

    description: str = ""
    needs_real: bool = True
    min_samples: int = 2
    lower_is_better: bool = True
    requirements: tuple[str, ...] = ()

    def ready(self) -> None:
        """Raise a GanzooError saying what to install when this metric cannot run."""

    def compute(self, fake: torch.Tensor, real: ImageSet | None, context: MetricContext) -> dict[str, Any]:
        raise NotImplementedError


class FeatureExtractor:
    """What a plugin registers as a feature space: uint8 images -> float32 (N, D) features.

    `identity()` changes whenever the features would (weights, version), so caches of real
    features key on it; `describe()` is the provenance saved with every score.
    """

    description: str = ""

    def ready(self) -> None:
        """Raise a GanzooError saying what to install when these features cannot be computed."""

    def identity(self) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"identity": self.identity()}

    def extract(self, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
        raise NotImplementedError


def get_metrics(names: Sequence[str]) -> dict[str, Metric]:
    """The registered metrics by name; an unknown name lists the known ones."""
    reg = registry("metrics")
    if not names:
        raise GanzooError("no metric asked for; known: " + ", ".join(reg.list()))
    return {name: reg.get(name) for name in dict.fromkeys(names)}


def get_feature_extractor(name: str) -> FeatureExtractor:
    return registry("features").get(name)


def check_result(name: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """A metric's result as the contract says: a dict with a finite "value"; NaN, Inf or a
    complex number anywhere is an error, never a silent result."""
    if not isinstance(result, Mapping) or "value" not in result:
        raise GanzooError(f"metric {name!r} returned no 'value' (every metric returns {{'value': number, ...}})")
    for key, value in result.items():
        complex_value = isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)
        if complex_value or (isinstance(value, numbers.Real) and not math.isfinite(float(value))):
            raise GanzooError(f"{name} came out as {value!r} ({key}); the images or sample counts do not allow it")
    return dict(result)


def compute_metrics(
    fake: torch.Tensor, real: ImageSet | None, metrics: Mapping[str, Metric], context: MetricContext
) -> dict[str, dict[str, Any]]:
    """Each metric's result with its sample counts (n_fake, n_real)."""
    n_fake, n_real = len(fake), (len(real) if real is not None else 0)
    results = {}
    for name, metric in metrics.items():
        if n_fake < metric.min_samples or (metric.needs_real and n_real < metric.min_samples):
            raise GanzooError(
                f"{name} needs at least {metric.min_samples} generated and real images, got {n_fake} generated, {n_real} real"
            )
        result = check_result(name, metric.compute(fake, real if metric.needs_real else None, context))
        results[name] = {**result, "n_fake": n_fake, **({"n_real": n_real} if metric.needs_real else {})}
    return results


def real_baseline(real: ImageSet, metrics: Mapping[str, Metric], n: int, context: MetricContext, stand_in: ImageSet | None = None) -> dict[str, dict[str, Any]]:
    """The metrics of real images in place of generated ones: what "perfect" scores at these counts.

    With `stand_in` (the training images, when `real` is the held-out part) min(n, its size) of
    them are scored against all of `real`, exactly as generated images are; without it, two
    disjoint random parts of `real` (min(n, N // 2) images playing the generated ones). The
    counts are recorded with every number (`n_real_held_out`, `n_real`).
    """
    order = torch.randperm(len(stand_in if stand_in is not None else real), generator=torch.Generator().manual_seed(int(context.seed)))
    if stand_in is not None:
        part_a, part_b = stand_in.subset(order[: min(n, len(stand_in))].tolist()), real
    else:
        held_out = min(n, len(real) // 2)
        part_a, part_b = real.subset(order[:held_out].tolist()), real.subset(order[held_out:].tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results = compute_metrics(part_a.images, part_b, {k: m for k, m in metrics.items() if m.needs_real}, MetricContext(context.device, context.seed, context.batch_size, context.options))
    for result in results.values():
        result["n_real_held_out"] = result.pop("n_fake")
        result["floor"] = "training images vs these" if stand_in is not None else "two disjoint parts of these"
    return results


def real_data_options(
    config: Mapping[str, Any], data: str | None = None, dataset: str | None = None, label: str | None = None,
    max_images: int | None = None, part: str = "all",
) -> tuple[str, DatasetOptions]:
    """Dataset name and options for real images preprocessed as the checkpoint's training data.

    Without `data`/`dataset` the checkpoint's own dataset (and label, unless given) is used,
    with the split file it was trained with.
    """
    training = config.get("training", {})
    recorded = config.get("dataset", {})
    prep = Preprocessing(
        resolution=int(config["model_args"]["resolution"]),
        clahe=bool(training.get("clahe", True)),
        clahe_clip=float(training.get("clahe_clip", 2.0)),
        clahe_tile=int(training.get("clahe_tile", 8)),
    )
    split = None
    if data is None and dataset is None:
        name, path = recorded.get("name") or default_dataset(None, None), recorded.get("path")
        label = label if label is not None else recorded.get("label")
        split = training.get("split")
        check_split_unchanged(recorded.get("split"))
    else:
        name, path = default_dataset(dataset, data), data
    return name, DatasetOptions(
        path=path, label=label, max_images=max_images, preprocessing=prep, seed=int(training.get("data_seed", 0)),
        window=training.get("window"), part=part, split=split,
    )


def real_images_for(
    config: Mapping[str, Any], data: str | None = None, dataset: str | None = None, label: str | None = None,
    max_images: int | None = None, part: str = "auto",
) -> ImageSet:
    """Real images preprocessed as the checkpoint's training data was (see `real_data_options`).

    `part="auto"`: the held-out part when the data has a split, else every image (with a
    warning when those are the checkpoint's own training images); or "holdout", "train", "all".
    """
    if part != "auto":
        return load_dataset(*real_data_options(config, data, dataset, label, max_images, part))
    try:
        return load_dataset(*real_data_options(config, data, dataset, label, max_images, "holdout"))
    except NoHoldout:
        real = load_dataset(*real_data_options(config, data, dataset, label, max_images, "all"))
    if data is None and dataset is None:
        warn_if_training_images(real)
    return real


def evaluate(
    gan: GAN,
    real: ImageSet | None = None,
    metrics: Sequence[str] = ("fid",),
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    batch_size: int = 64,
    options: Mapping[str, Any] | None = None,
    baseline: bool = False,
    baseline_images: ImageSet | None = None,
) -> dict[str, Any]:
    """Generate `n` images (default: as many as real ones) with `seed` and score them against `real`.

    Returns {"metrics": {name: {"value", extras..., "n_fake", "n_real"}}, "real": which real
    images (name, fingerprint, count), "baseline" (real vs real, with `baseline=True`),
    "timing", "versions"}. The same call with the same seed gives the same numbers.
    """
    chosen = get_metrics(list(metrics))
    for metric in chosen.values():
        metric.ready()
    if batch_size < 1:
        raise GanzooError(f"batch size must be >= 1, got {batch_size}")
    context = MetricContext(resolve_device(device), seed, batch_size, dict(options or {}))
    needs_real = any(m.needs_real for m in chosen.values())
    if needs_real and real is None:
        config = getattr(gan, "checkpoint_config", None)
        if config is None:
            raise GanzooError("evaluate() needs `real` images for a GAN that was not loaded from a checkpoint")
        real = real_images_for(config)
    if real is not None and real.images.shape[-1] != gan.resolution:
        warnings.warn(
            f"real images are {real.images.shape[-1]}px, generated ones {gan.resolution}px: the metrics compare different resolutions",
            stacklevel=2,
        )
    n = n if n is not None else (len(real) if needs_real and real is not None else 1000)
    if n < 2:
        raise GanzooError(f"-n must be >= 2 generated images, got {n}")
    start = time.perf_counter()
    fake = to_uint8(gan.sample(n, seed=seed))
    timing = {"generate_s": time.perf_counter() - start}
    start = time.perf_counter()
    results = compute_metrics(fake, real if needs_real else None, chosen, context)
    timing["metrics_s"] = time.perf_counter() - start
    report_baseline = real_baseline(real, chosen, n, context, baseline_images) if baseline and needs_real and real is not None else None
    return {
        "metrics": results,
        "baseline": report_baseline,
        "n_fake": n,
        "n_real": len(real) if needs_real and real is not None else None,
        "seed": seed,
        "real": real.describe() if needs_real and real is not None else None,
        "device": str(context.device),
        "timing": timing,
        "versions": environment_versions(sorted({r for m in chosen.values() for r in m.requirements})),
    }
