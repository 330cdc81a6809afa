"""The `ganzoo evaluate` command: score a checkpoint's samples against real images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ganzoo.cli import handle_errors
from ganzoo.console import console
from ganzoo.errors import GanzooError

DEFAULT_METRICS = "fid,kid,precision-recall"


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return "" if value is None else str(value)


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
        note = ""
        if name == "kid":
            note = f"subset {result['subset_size']} x {result['subsets']}"
        elif name == "fid" and min(n_fake, result.get("n_real", n_fake)) < 2048:
            note = "biased: < 2048 per side"
        elif name == "isc":
            note = f"{result['splits']} splits"
        table.add_row(name + suffix, _fmt(result["value"]), _fmt(result.get("std")), *counts, note + extra)
    weights = report["weights"]
    real = report.get("real") or {}
    table.caption = (
        f"Inception: {weights['source']} sha256 {weights['sha256'][:12]}; "
        + (f"real: {real.get('name')} {real.get('fingerprint')} ({'cached features' if real.get('cached_features') else 'extracted'}); " if real else "")
        + f"seed {report['seed']}; {report['timing']['features_per_s']:.1f} features/s on {report['device']}"
    )
    return table


def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint or run directory.")],
    data: Annotated[Optional[str], typer.Option(help="Real images: a directory of PNG/JPEG. (default: the checkpoint's training data)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Real images: a dataset name (ganzoo list datasets).")] = None,
    label: Annotated[Optional[str], typer.Option(help="Only real images with this label. (default: the checkpoint's, without --data)")] = None,
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics (ganzoo list metrics).")] = DEFAULT_METRICS,
    n: Annotated[Optional[int], typer.Option("-n", "--n", help="Generated images. (default: as many as real images)")] = None,
    max_real: Annotated[Optional[int], typer.Option(help="Use at most N real images (seeded subset).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated images.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per Inception batch.")] = 64,
    inception_weights: Annotated[Optional[Path], typer.Option(help="Inception weights (.safetensors or torch-fidelity's .pth). (default: $GANZOO_INCEPTION_WEIGHTS, else found or converted)")] = None,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also score real vs real (held-out part of the real images): what a perfect model gets at these counts.")] = False,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the numbers, sample counts, weights hash and versions here.")] = None,
) -> None:
    """Score N generated images against real ones: FID, KID, precision/recall (torch-fidelity)."""
    from ganzoo.checkpoint import read_config, resolve_checkpoint
    from ganzoo.data import load_dataset
    from ganzoo.metrics import evaluate as run_evaluation
    from ganzoo.metrics import get_metrics, real_data_options
    from ganzoo.metrics import inception_weights as find_weights
    from ganzoo.paths import atomic_write_text, dump_json

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    chosen = get_metrics(names)
    if max_real is not None and max_real < 1:
        raise GanzooError(f"--max-real must be >= 1, got {max_real}")
    path = resolve_checkpoint(checkpoint)
    weights = find_weights(inception_weights, classifier=any(m.needs_classifier for m in chosen.values()))
    real, options = None, None
    if any(m.needs_real for m in chosen.values()):
        name, options = real_data_options(read_config(path), data=data, dataset=dataset, label=label, max_images=max_real)
        real = load_dataset(name, options)
    report = run_evaluation(path, real, metrics=names, n=n, seed=seed, device=device, batch_size=batch_size, weights=weights, baseline=baseline)
    if options is not None:
        report["real"].update({"path": options.path, "label": options.label, "max_images": options.max_images})
    out = Console(width=max(console.width, 120))
    out.print(results_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, dump_json(report))
        console.print(f"wrote {json_path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(handle_errors(evaluate))
