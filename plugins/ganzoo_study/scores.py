"""Scoring checkpoints for the sweep and the comparison, through the kernel's `evaluate`.

Every metric returns a "value" (precision-recall: its F-score) and may add extras
(precision, recall, KID's std); the reports read "value" for every metric alike and carry
the measured extras next to it. Real features are cached by the metrics plugin, so scoring
many generated sets against one real set extracts the real features once.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

from ganzoo.api import (
    ImageSet,
    MetricContext,
    evaluate,
    get_metrics,
    load,
    read_config,
    real_baseline,
    real_images_for,
    resolve_device,
    to_uint8,
    write_grid,
)

from .common import config_hash, fmt, summarize, write_json

GRID_SAMPLES = 64
COUNTS = ("value", "std", "n_fake", "n_real", "n_real_held_out")


def check_metrics(metrics: Sequence[str]) -> None:
    """Fail now, not after hours of training, when a metric cannot run here (unknown, no weights)."""
    for metric in get_metrics(list(metrics)).values():
        metric.ready()


def metric_identity(metrics: Sequence[str]) -> dict[str, str]:
    """Which implementation computes each metric: part of every cache key."""
    return {name: f"{type(m).__module__}.{type(m).__qualname__}" for name, m in get_metrics(list(metrics)).items()}


def measured_extras(results: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Each measured extra (a non-integer number such as precision or recall) per seed of
    `results`; settings (integers such as a subset size) and text are left out."""
    extras: dict[str, list[float]] = {}
    for key, first in results[0].items():
        if key in COUNTS or not isinstance(first, numbers.Real) or isinstance(first, numbers.Integral):
            continue
        per_seed = [float(r[key]) for r in results if isinstance(r.get(key), numbers.Real)]
        if len(per_seed) == len(results):
            extras[key] = per_seed
    return extras


def summarize_metric(reports: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    """One metric over the generation seeds of `reports` (evaluate() results): mean, spread, extras, counts."""
    per_seed = [r["metrics"][name] for r in reports]
    values = [float(m["value"]) for m in per_seed]
    extras = measured_extras(per_seed)
    first = per_seed[0]
    return {**summarize(values), "values": values, "metric_std": first.get("std"),
            "extras": {k: sum(v) / len(v) for k, v in extras.items()}, "extra_values": extras,
            "n_fake": first.get("n_fake"), "n_real": first.get("n_real"), "seeds": len(reports)}


def extras_text(extras: Mapping[str, float]) -> str:
    """Extras for a table cell, e.g. "precision 0.61, recall 0.42"."""
    return ", ".join(f"{k} {fmt(v)}" for k, v in extras.items())


def floor_images(config: Mapping[str, Any], real: ImageSet) -> ImageSet | None:
    """The training images, standing in for generated ones in the floor, when `real` is the held-out part."""
    return real_images_for(config, part="train") if real.part == "holdout" else None


def real_vs_real(real: ImageSet, metrics: Sequence[str], n: int, device: str, cache: Path | None = None, stand_in: ImageSet | None = None) -> dict[str, Any]:
    """Real images in place of generated ones at the generated count (`real_baseline`): computed once per real set."""
    key = config_hash({"real": real.fingerprint, "n_real": len(real), "n": n, "metrics": metric_identity(metrics),
                       "stand_in": stand_in.fingerprint if stand_in is not None else None})
    path = cache / f"baseline-{key}.json" if cache is not None else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    chosen = {k: m for k, m in get_metrics(list(metrics)).items() if m.needs_real}
    if len(real) < 4 or not chosen:
        return {}
    context = MetricContext(resolve_device(device), seed=0)
    out = {name: {**{k: v for k, v in result.items() if k != "n_real_held_out"}, "n_held_out": result.get("n_real_held_out")}
           for name, result in real_baseline(real, chosen, n, context, stand_in).items()}
    if path is not None:
        write_json(path, out)
    return out


def score_seeds(checkpoint: Path, real: ImageSet, metrics: Sequence[str], n: int | None, seeds: int, device: str) -> list[dict[str, Any]]:
    """evaluate() of one checkpoint at generation seeds 0..seeds-1 (the GAN is loaded once)."""
    gan = load(checkpoint, device=resolve_device(device))
    return [evaluate(gan, real, metrics=list(metrics), n=n, seed=s, device=device) for s in range(seeds)]


def evaluate_checkpoint(
    checkpoint: Path,
    metrics: Sequence[str],
    eval_n: int | None,
    eval_seeds: int,
    max_real: int | None,
    device: str,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Metrics of one checkpoint against its training data's full real set, over `eval_seeds` generation seeds; cached."""
    config = read_config(checkpoint)
    real = real_images_for(config, max_images=max_real)
    key = config_hash({"checkpoint": str(checkpoint), "config": config_hash(config), "metrics": metric_identity(metrics),
                       "n": eval_n, "seeds": eval_seeds, "real": real.fingerprint, "n_real": len(real)})
    if cache is not None and (cache / f"{key}.json").exists():
        return json.loads((cache / f"{key}.json").read_text())
    reports = score_seeds(checkpoint, real, metrics, eval_n, eval_seeds, device)
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "real": reports[0]["real"],
                              "metrics": {name: summarize_metric(reports, name) for name in metrics},
                              "baseline": real_vs_real(real, metrics, reports[0]["n_fake"], device, cache, floor_images(config, real))}
    if cache is not None:
        write_json(cache / f"{key}.json", result)
    return result


def sample_grid(checkpoint: Path, path: Path, seed: int = 0) -> Path:
    """The fixed-noise grid of a checkpoint (same noise for every row, so grids are comparable)."""
    if not path.exists():
        write_grid(path, to_uint8(load(checkpoint).sample(GRID_SAMPLES, seed=seed)), nrow=8)
    return path


def real_reference(real: Mapping[str, Any] | None) -> str:
    """The report line naming the real images every score used: which part, how many, fingerprint."""
    if not real:
        return "Real reference: none (no metric needs real images)."
    part = {"holdout": "held-out", "train": "training", "all": "all (no held-out split: the training images are among them)"}.get(real.get("part", ""), "")
    return f"Real reference: {real.get('images', real.get('n'))} {part} images of {real['name']} (fingerprint {real['fingerprint']})."
