"""The `ganzoo audit` command: a thin layer over `run.audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ganzoo.api import console

from .defaults import DEFAULTS


def audit(
    model: Annotated[Optional[str], typer.Argument(metavar="CHECKPOINT_OR_HUB_NAME", help="Checkpoint, run directory or hub location (or use --generated).")] = None,
    generated: Annotated[Optional[Path], typer.Option(help="Audit a folder of PNG/JPEG images instead of a checkpoint's samples.")] = None,
    data: Annotated[Optional[str], typer.Option(help="Training images. (default: the checkpoint's recorded training data)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Training images as a dataset name (ganzoo list datasets).")] = None,
    label: Annotated[Optional[str], typer.Option(help="Only training (and held-out) images with this label. (default: the checkpoint's)")] = None,
    holdout: Annotated[Optional[str], typer.Option(help="Real images the model never saw, of the same kind and label as the training data. (default: the held-out part of the data's split)")] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="Generated images to audit (checkpoint).")] = DEFAULTS["n"],
    features: Annotated[str, typer.Option(help="Feature space: pixels, inception (needs ganzoo[fid]; misses most lightly edited copies, see docs/audit.md), or another registered one.")] = DEFAULTS["features"],
    q: Annotated[float, typer.Option("--q", help="False-alarm rate: flag samples closer to the training images than this quantile of held-out images.")] = DEFAULTS["q"],
    k: Annotated[int, typer.Option("--k", help="Nearest training images recorded per sample.")] = DEFAULTS["k"],
    cells: Annotated[int, typer.Option(help="k-means cells of the data-copying test C_T.")] = DEFAULTS["cells"],
    seed: Annotated[int, typer.Option(help="Seed of the samples, PCA, k-means and bootstrap.")] = DEFAULTS["seed"],
    top: Annotated[int, typer.Option(help="Most suspicious samples shown in the gallery and report.")] = DEFAULTS["top"],
    out: Annotated[Path, typer.Option(help="Directory for audit.json, report.md, gallery.png, histograms.png.")] = Path("audit"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per feature or discriminator batch.")] = 64,
    clahe: Annotated[bool, typer.Option("--clahe/--no-clahe", help="CLAHE the training images (--generated only; a checkpoint's own setting otherwise).")] = True,
    resolution: Annotated[Optional[int], typer.Option(help="Size the --generated images are resized to. (default: their own)")] = None,
) -> None:
    """Are the samples copies of training images? Calibrated on held-out real images; research use only."""
    from .run import audit as run_audit

    report = run_audit(
        model, generated=generated, data=data, dataset=dataset, label=label, holdout=holdout, n=n, features=features, q=q, k=k, cells=cells,
        seed=seed, top=top, out=out, device=device, batch_size=batch_size, clahe=clahe, resolution=resolution,
    )
    flagged = report["flagged"]
    if "expected_by_chance" in flagged:
        chance = f" (false-alarm bound {100 * report['threshold']['false_alarm_bound']:.1f}%: about {flagged['expected_by_chance']:.1f} expected by chance)"
    else:
        chance = ""
    c_t = report["copying"]["value"]
    console.print(f"C_T = {'n/a' if c_t is None else f'{c_t:.2f}'}; membership: "
                  + (report["membership"]["skipped"] if "skipped" in report["membership"] else f"AUC {report['membership']['auc']:.3f}")
                  + f"; wrote {out / 'audit.json'}, report.md, gallery.png, histograms.png", highlight=False, soft_wrap=True)
    typer.echo(report["verdict"] + chance)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
