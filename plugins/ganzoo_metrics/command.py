"""The `ganzoo evaluate` command: score a checkpoint's samples against real images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ganzoo import api  # api.* names import torch when the command runs, not at --help
from ganzoo.api import GanzooError, atomic_write_text, console, dump_json

DEFAULT_METRICS = "fid,kid,precision-recall"


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return "" if value is None else str(value)


def _note(name: str, result: dict[str, Any], n_fake: int) -> str:
    if name == "kid":
        return f"subset {result['subset_size']} x {result['subsets']}"
    if name == "fid" and min(n_fake, result.get("n_real", n_fake)) < 2048:
        return "biased: < 2048 per side"
    if name == "isc":
        return f"{result['splits']} splits"
    return ""


def results_table(report: dict[str, Any]) -> Table:
    """One row per number, each with the sample counts it was computed from."""
    table = Table(title="metrics", title_justify="left")
    for column in ("metric", "value", "± std", "n_fake", "n_real", "note"):
        table.add_column(column, justify="right" if column not in ("metric", "note") else "left")
    rows = [(name, result, "") for name, result in report["metrics"].items()]
    rows += [(name, result, " real-vs-real") for name, result in (report.get("baseline") or {}).items()]
    for name, result, suffix in rows:
        n_fake = result.get("n_fake", result.get("n_real_held_out"))
        counts = (str(n_fake), str(result.get("n_real", "")))
        extra = "; n_fake = held-out real" if suffix else ""
        if name == "precision-recall":
            for key in ("precision", "recall", "f_score"):
                table.add_row(key.replace("_", "-") + suffix, _fmt(result[key]), "", *counts, f"k={result['neighborhood']}{extra}")
            continue
        table.add_row(name + suffix, _fmt(result["value"]), _fmt(result.get("std")), *counts, (_note(name, result, n_fake) + extra).lstrip("; "))
    table.caption = _caption(report)
    return table


def _caption(report: dict[str, Any]) -> str:
    parts = []
    features = report.get("features")
    if features:
        weights = f"{features.get('source', '')} sha256 {features['sha256'][:12]}" if "sha256" in features else features.get("identity", "")
        parts.append(f"{features.get('extractor', 'features')}: {weights}")
    real = report.get("real") or {}
    if real:
        how = {True: " (cached features)", False: " (extracted)"}.get(real.get("cached_features"), "")
        parts.append(f"real: {real.get('name')} {real.get('fingerprint')}{how}")
    speed = report["timing"].get("features_per_s")
    parts.append(f"seed {report['seed']}; " + (f"{speed:.1f} features/s on " if speed else "on ") + report["device"])
    return "; ".join(parts)


def summarize_features(report: dict[str, Any]) -> None:
    """Lift what the metrics recorded about their features into the report: provenance
    (`features`), whether real features came from the cache, and features/s."""
    results = list(report["metrics"].values())
    described = [r["features"] for r in results if isinstance(r.get("features"), dict)]
    if described:
        report["features"] = described[0]
    logs = [r["extraction"] for r in results if isinstance(r.get("extraction"), dict)]
    images, seconds = sum(log["images"] for log in logs), sum(log["seconds"] for log in logs)
    if images and seconds > 0:
        report["timing"]["features_per_s"] = images / seconds
    cached = [log["real_cached"] for log in logs if "real_cached" in log]
    if cached and report.get("real"):
        report["real"]["cached_features"] = bool(cached[0])


def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint, run directory or hub location.")],
    data: Annotated[Optional[str], typer.Option(help="Real images: a directory of PNG/JPEG. (default: the checkpoint's training data)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Real images: a dataset name (ganzoo list datasets).")] = None,
    label: Annotated[Optional[str], typer.Option(help="Only real images with this label. (default: the checkpoint's, without --data)")] = None,
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics (ganzoo list metrics).")] = DEFAULT_METRICS,
    n: Annotated[Optional[int], typer.Option("-n", "--n", help="Generated images. (default: as many as real images)")] = None,
    max_real: Annotated[Optional[int], typer.Option(help="Use at most N real images (seeded subset).")] = None,
    real_part: Annotated[str, typer.Option("--real", help="Which real images: auto (the held-out part of a split, else all, said so), holdout, train (the training images, named as such) or all.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the generated images.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per feature-extraction batch.")] = 64,
    inception_weights: Annotated[Optional[Path], typer.Option(help="Inception weights (.safetensors or torch-fidelity's .pth). (default: $GANZOO_INCEPTION_WEIGHTS, else found or converted)")] = None,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also score real images in place of generated ones (training images vs the held-out ones when there is a split, else two halves of the real images): what a perfect model gets at these counts.")] = False,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the numbers, sample counts, feature provenance and versions here.")] = None,
) -> None:
    """Score N generated images against real ones: FID, KID, precision/recall (torch-fidelity)."""
    from .weights import using_weights

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    chosen = api.get_metrics(names)
    if max_real is not None and max_real < 1:
        raise GanzooError(f"--max-real must be >= 1, got {max_real}")
    with using_weights(inception_weights):
        for metric in chosen.values():
            metric.ready()  # before loading anything: a missing package or weights fails at once
        path = api.resolve_checkpoint(checkpoint)
        gan = api.load(path, device=api.resolve_device(device))
        real = None
        if any(m.needs_real for m in chosen.values()):
            real = api.real_images_for(gan.checkpoint_config, data=data, dataset=dataset, label=label, max_images=max_real, part=real_part)
            console.print(escape(f"real images: {describe_real(real)}"), highlight=False)
        training = None
        if baseline and real is not None and real.part == "holdout" and data is None and dataset is None:
            training = api.real_images_for(gan.checkpoint_config, label=label, part="train")  # the floor: training images in place of generated ones
        report = api.evaluate(gan, real, metrics=names, n=n, seed=seed, device=device, batch_size=batch_size, baseline=baseline, baseline_images=training)
    report["checkpoint"] = str(path)
    if real is not None:
        report["real"].update({"path": real.source, "label": label or gan.checkpoint_config.get("dataset", {}).get("label"), "max_images": max_real})
    summarize_features(report)
    out = Console(width=max(console.width, 120))
    out.print(results_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, dump_json(report))
        console.print(f"wrote {json_path}", highlight=False)


def describe_real(real: api.ImageSet) -> str:
    """'85 held-out images of DATA (fingerprint F)', naming training images as such."""
    what = {"holdout": "held-out", "train": "training", "all": "(all, training images included)"}.get(real.part, real.part)
    return f"{len(real)} {what} images of {real.source or real.name} (fingerprint {real.fingerprint})"


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
