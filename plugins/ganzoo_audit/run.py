"""`audit(...)`: load the three image sets, measure, and write the report.

The steps: training and held-out images (`sources`), samples of the model or a folder, the
feature space fitted on the training images (`features`), k-means cells, nearest neighbours
and the calibrated threshold (`analysis`), the membership check (`membership`), and the
outputs (`report`, `figures`).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ganzoo.api import GanzooError, ImageSet, __version__, environment_versions, load_dataset, record_audit, resolve_device

from .analysis import analyse, reference
from .copying import partition
from .defaults import DEFAULTS
from .distances import DUPLICATE_RATIO, Neighbours
from .features import feature_space
from .membership import membership_check
from .report import summary_of, verdict, write_outputs
from .sources import Samples, check_disjoint, check_sizes, check_training, folder_samples, held_out_images, model_samples, training_options

# `pixels` by default: in the planted-copy calibration (docs/audit.md) it finds exact and lightly
# edited copies alike, where Inception features missed most edited ones, and it is ~100x faster on a CPU.


def require_packages() -> None:
    """Say what to install before any image is loaded, not half-way."""
    import importlib

    try:
        for module in ("scipy.stats", "sklearn.cluster", "threadpoolctl"):
            importlib.import_module(module)
    except ImportError as error:
        raise GanzooError(f"ganzoo audit needs scikit-learn and scipy ({error}): pip install 'ganzoo[audit]'") from None


def check_options(n: int, q: float, k: int, cells: int, top: int) -> None:
    if n < 2:
        raise GanzooError(f"-n must be >= 2 generated images, got {n}")
    if not 0 < q < 0.5:
        raise GanzooError(f"--q must be in (0, 0.5), got {q}")
    if k < 2:
        raise GanzooError(f"--k must be >= 2 (NNDR needs two neighbours), got {k}")
    if cells < 1:
        raise GanzooError(f"--cells must be >= 1, got {cells}")
    if top < 0:
        raise GanzooError(f"--top must be >= 0, got {top}")


def audit(
    model: str | Path | None = None,
    *,
    generated: str | Path | None = None,
    data: str | None = None,
    dataset: str | None = None,
    label: str | None = None,
    holdout: str | Path | ImageSet | None = None,
    training: ImageSet | None = None,
    n: int = DEFAULTS["n"],
    features: str = DEFAULTS["features"],
    q: float = DEFAULTS["q"],
    k: int = DEFAULTS["k"],
    cells: int = DEFAULTS["cells"],
    seed: int = DEFAULTS["seed"],
    top: int = DEFAULTS["top"],
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    clahe: bool = True,
    resolution: int | None = None,
) -> dict[str, Any]:
    """Audit a checkpoint's samples (or a `generated` folder) for copies of its training images.

    Returns the report `audit.json` holds (written with report.md, gallery.png and
    histograms.png when `out` is given). `holdout`: real images the model never saw (a folder,
    or an ImageSet); `training`: an ImageSet instead of the checkpoint's recorded data.
    """
    if (model is None) == (generated is None):
        raise GanzooError("audit a checkpoint (CHECKPOINT_OR_HUB_NAME) or a folder of images (--generated DIR), not both or neither")
    check_options(n, q, k, cells, top)
    require_packages()
    start = time.perf_counter()
    dev = resolve_device(device)
    space = feature_space(features, dev, batch_size, seed)  # an unknown or unusable one fails before anything loads
    samples = model_samples(model, n, seed, dev) if model is not None else folder_samples(generated, resolution)
    res = int(samples.images.shape[-1])
    held_out = holdout if isinstance(holdout, ImageSet) else None
    if training is None or held_out is None:
        name, options = training_options(samples.config, data, dataset, label, res, clahe)
        training = training if training is not None else load_dataset(name, options)
        held_out = held_out if held_out is not None else held_out_images(name, options, holdout)
    check_sizes(training, held_out, samples)
    identical = check_disjoint(training, held_out, seed)
    same_training = check_training(training, samples.config)
    timing = {"load_s": time.perf_counter() - start}

    start = time.perf_counter()
    space.fit(training.images)
    held_rows, gen_rows = space.embed(held_out.images), space.embed(samples.images)
    timing["features_s"] = time.perf_counter() - start
    start = time.perf_counter()
    ref = reference(space, partition(space.index()[0], cells, seed), held_rows, q, k)
    generated_nb = ref.neighbours(gen_rows)
    results = analyse(ref, generated_nb)
    timing["distances_s"] = time.perf_counter() - start
    start = time.perf_counter()
    results["membership"] = membership_check(samples.gan, samples.config, training.images, held_out.images, dev, batch_size, seed)
    timing["membership_s"] = time.perf_counter() - start

    report = build_report(results, generated_nb, ref.duplicates, identical, same_training, samples, training, held_out, space.describe(),
                          {"n": len(samples.images), "features": features, "q": q, "k": k, "cells": cells, "seed": seed, "top": top, "device": str(dev)}, timing)
    if out is not None:
        write_outputs(Path(out), report, samples.images, training.images, generated_nb, ref.held_out)
    if samples.model_sha256:  # a checkpoint, or a folder whose `ganzoo generate` sidecars name one model
        record_audit(report["summary"])
    return report


def build_report(
    results: dict[str, Any], generated: Neighbours, duplicates: np.ndarray, identical: int, same_training: bool | None, samples: Samples, training: ImageSet, held_out: ImageSet,
    space: dict[str, Any], settings: dict[str, Any], timing: dict[str, float],
) -> dict[str, Any]:
    """audit.json's content: every number with its counts, the verdict, the top suspicious samples."""
    flags = results.pop("flags")
    order = np.argsort(generated.dcr, kind="stable")
    suspicious = []
    for i in order[: settings["top"]]:
        neighbours = [{"training_index": int(j), "training_file": training.files[j] if training.files else None, "distance": float(d)}
                      for j, d in zip(generated.indices[i], generated.distances[i])]
        suspicious.append({"index": int(i), "file": samples.files[i] if samples.files else None, "dcr": float(generated.dcr[i]),
                           "nndr": float(generated.nndr[i]), "flagged": bool(flags[i]), "neighbours": neighbours})
    duplicate_files = [held_out.files[i] for i in np.flatnonzero(duplicates)] if held_out.files else []
    report: dict[str, Any] = {
        "verdict": verdict(results["flagged"]["count"], len(flags)),
        "settings": settings,
        "features": space,
        "model": samples.source,
        "data": {
            "training": {**training.describe(), "source": training.source, "as_recorded_by_checkpoint": same_training},
            "held_out": {**held_out.describe(), "source": held_out.source, "used": int(len(duplicates) - duplicates.sum())},
            "held_out_duplicates": {"count": int(duplicates.sum()), "pixel_identical": identical, "files": duplicate_files,
                                    "rule": f"distance below {DUPLICATE_RATIO:g} x the median held-out distance: the same image as a training one, left out"},
        },
        **results,
        "flagged_indices": [int(i) for i in np.flatnonzero(flags)],
        "suspicious": suspicious,
        "timing": {**timing, "total_s": sum(timing.values())},
        "versions": environment_versions(["scikit-learn", "scipy"]),
        "ganzoo_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    report["summary"] = summary_of(report)
    return report
