"""Planted copies: how often the audit finds copies it is given, and how often it cries wolf.

A "copycat" generator returns training images, exact or lightly perturbed, at a chosen copy
rate, the rest being real images neither the model nor the threshold saw ("novel"). On
those novel images a false alarm is a real mistake, so the measured false-alarm rate checks
the calibration; on the copies the flag rate is the detection rate. The numbers come from the
same `analysis` functions `ganzoo audit` runs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ganzoo.api import GanzooError, ImageSet

from .analysis import analyse, reference
from .copying import partition
from .distances import Neighbours
from .features import FeatureSpace, shifted

RATES = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50)
KINDS = ("exact", "perturbed")
NOISE_SD, MAX_SHIFT, CONTRAST = 3.0, 2, 0.1


def perturb(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Light edits a copy may carry, all at once: a shift by 1-2 px (edge pixels repeated),
    contrast scaled by 0.9-1.1 about the image mean, Gaussian noise (sd 3 gray levels)."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images:
        dx, dy = 0, 0
        while dx == dy == 0:
            dx, dy = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, 2))
        moved = shifted(image[None], dx, dy)[0].numpy().astype(np.float64)
        mean = moved.mean()
        edited = (moved - mean) * rng.uniform(1 - CONTRAST, 1 + CONTRAST) + mean + rng.normal(0.0, NOISE_SD, moved.shape)
        out.append(np.clip(np.round(edited), 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out)) if out else images[:0]


def copycat(training: torch.Tensor, novel: torch.Tensor, n: int, rate: float, kind: str = "exact", seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """`n` "generated" images: round(rate * n) copies of training images (distinct while there
    are enough), the rest novel real images, shuffled. Returns (images, is_copy, source index
    of each copy or -1)."""
    if kind not in KINDS:
        raise GanzooError(f"copy kind must be one of {', '.join(KINDS)}, got {kind!r}")
    copies = int(round(rate * n))
    if n - copies > len(novel):
        raise GanzooError(f"{n - copies} novel images needed, {len(novel)} given")
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(training), copies, replace=copies > len(training))
    copied = training[torch.from_numpy(sources)] if copies else training[:0]
    if kind == "perturbed":
        copied = perturb(copied, seed)
    images = torch.cat([copied, novel[: n - copies]])
    order = rng.permutation(n)
    is_copy = np.r_[np.ones(copies, bool), np.zeros(n - copies, bool)][order]
    source = np.r_[sources, -np.ones(n - copies, np.int64)][order]
    return images[torch.from_numpy(order)], is_copy, source


def disjoint_parts(images: ImageSet, sizes: Sequence[int], seed: int = 0) -> list[ImageSet]:
    """Random parts of a real dataset with near-duplicate images (the same X-ray under two names)
    kept in one part, as a split by patient would: otherwise a "novel" image could be a copy."""
    from .distances import DUPLICATE_RATIO, nearest
    from .features import PixelSpace

    space = PixelSpace(seed=seed)
    space.fit(images.images)
    index = space.index()
    close = nearest(index[0], index, 1, exclude_self=True)
    limit = DUPLICATE_RATIO * float(np.median(close.dcr))
    group = np.arange(len(images))
    for i, (j, d) in enumerate(zip(close.indices[:, 0], close.dcr)):
        if d < limit:
            a, b = group[i], group[j]
            group[group == max(a, b)] = min(a, b)
    order = [int(i) for g in np.random.default_rng(seed).permutation(np.unique(group)) for i in np.flatnonzero(group == g)]
    if sum(sizes) > len(order):
        raise GanzooError(f"{sum(sizes)} images asked for, {len(order)} available")
    parts, start = [], 0
    for size in sizes:
        parts.append(images.subset(order[start : start + size]))
        start += size
    return parts


def calibration_table(
    space: FeatureSpace, training: ImageSet, held_out: ImageSet, novel: ImageSet, n: int,
    rates: Sequence[float] = RATES, kinds: Sequence[str] = KINDS, q: float = 0.01, k: int = 5, cells: int = 3, seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per copy kind and rate: detection rate, false alarms on the novel images, C_T.

    Per-sample distances do not depend on the other samples, so each image is measured once and
    every mix is assembled from those measurements (copies first, then novel images)."""
    space.fit(training.images)
    ref = reference(space, partition(space.index()[0], cells, seed), space.embed(held_out.images), q, k)
    novel_nb = ref.neighbours(space.embed(novel.images[:n]))
    most = int(round(max(rates) * n))
    sources = np.random.default_rng(seed).choice(len(training), most, replace=most > len(training))
    rows = []
    for kind in kinds:
        copied = training.images[torch.from_numpy(sources)]
        copies_nb = ref.neighbours(space.embed(perturb(copied, seed) if kind == "perturbed" else copied))
        for rate in rates:
            if rate == 0 and kind != kinds[0]:
                continue
            c = int(round(rate * n))
            generated = Neighbours.concat([copies_nb.take(np.arange(c)), novel_nb.take(np.arange(n - c))])
            result = analyse(ref, generated)
            flags = result["flags"]
            rows.append({
                "kind": kind if c else "none", "rate": rate, "n": n, "copies": c,
                "detected": int(flags[:c].sum()), "detection": float(flags[:c].mean()) if c else None,
                "false_alarms": int(flags[c:].sum()), "false_alarm_rate": float(flags[c:].mean()),
                "c_t": result["copying"]["value"], "cells_used": result["copying"].get("cells_used", 0),
                "threshold": result["threshold"]["value"], "false_alarm_bound": result["threshold"]["false_alarm_bound"],
                "held_out": len(ref.held_out), "held_out_duplicates": int(ref.duplicates.sum()), "training": len(training),
            })
    return rows


def table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The calibration table as Markdown."""
    lines = ["| copies | copy rate | generated | detected | detection rate | false alarms | false-alarm rate | C_T |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        detection = "" if row["detection"] is None else f"{100 * row['detection']:.1f}%"
        c_t = "n/a" if row["c_t"] is None else f"{row['c_t']:.2f}"
        lines.append(f"| {row['kind']} | {100 * row['rate']:g}% | {row['n']} | {row['detected']}/{row['copies']} | {detection} "
                     f"| {row['false_alarms']}/{row['n'] - row['copies']} | {100 * row['false_alarm_rate']:.2f}% | {c_t} |")
    return "\n".join(lines)
