"""`ganzoo hub push|pull|list|show`: a thin layer over the kernel's hub functions (ganzoo.api `hub_*`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ganzoo import api  # api.hub_* import the hub module (torch) when a command runs, not at --help
from ganzoo.api import GanzooError, console, get_hub

hub_app = typer.Typer(
    help="Share checkpoints through model hubs: local-dir (a shared directory) or hf-hub. Research use only.",
    no_args_is_help=True,
)

HubOption = Annotated[
    Optional[str],
    typer.Option(
        "--hub",
        help="Hub URI: local-dir:/shared/hub, hf-hub, or hf-hub:https://host. [default: $GANZOO_HUB, else local-dir:$GANZOO_HOME/hub]",
    ),
]


@hub_app.command()
def push(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint or run directory.")],
    name: Annotated[str, typer.Argument(help="NAME[@VERSION], or a location such as hf-hub:org/name.")],
    hub_uri: HubOption = None,
    include_discriminator: Annotated[bool, typer.Option(help="Also share the discriminator (not needed to sample).")] = False,
    license: Annotated[Optional[str], typer.Option(help="License of the weights, as the model card should state it.")] = None,
    metrics: Annotated[Optional[Path], typer.Option(help='JSON file of metrics: what `ganzoo evaluate --json` writes, or e.g. {"fid": {"value": 41.2, "samples": 5000}}.')] = None,
    seed: Annotated[int, typer.Option(help="Seed of the model card's sample grid.")] = 0,
    audit: Annotated[Optional[Path], typer.Option(help="A `ganzoo audit` output directory (or its audit.json) of this checkpoint: its summary goes into the model card.")] = None,
) -> None:
    """Publish the generator (never trainer state) as an immutable version; prints its location."""
    ref = api.hub_push(
        checkpoint,
        name,
        hub_uri,
        include_discriminator=include_discriminator,
        license=license,
        metrics=_read_metrics(metrics) if metrics else None,
        seed=seed,
        audit=api.read_audit(audit) if audit else None,
    )
    console.print(f"pushed {ref.name}@{ref.version} to {ref.hub}", highlight=False, soft_wrap=True)
    typer.echo(ref.location)


@hub_app.command()
def pull(
    name: Annotated[str, typer.Argument(help="NAME[@VERSION] (latest when no version), or a location.")],
    hub_uri: HubOption = None,
    force: Annotated[bool, typer.Option(help="Download again even when a verified copy is cached.")] = False,
) -> None:
    """Download a model, verify every file against its manifest, and print the local directory."""
    typer.echo(str(api.hub_pull(name, hub_uri, force=force)))


@hub_app.command("list")
def list_(hub_uri: HubOption = None) -> None:
    """List every model and version on a hub."""
    table = Table(title=get_hub(hub_uri).uri, title_justify="left")
    for column in ("name", "version", "created", "size", "ganzoo"):
        table.add_column(column)
    for row in api.hub_list_models(hub_uri):
        table.add_row(row.name, row.version, row.created or "?", _size(row.size), row.ganzoo_version or "?")
    typer.echo(_render(table))


@hub_app.command()
def show(
    name: Annotated[str, typer.Argument(help="NAME[@VERSION] (latest when no version), or a location.")],
    hub_uri: HubOption = None,
) -> None:
    """Print a model's verified model card and metrics (downloads only the card and manifest)."""
    info = api.hub_show(name, hub_uri)
    files = info.manifest["files"]
    typer.echo(
        f"{info.location}  created {info.manifest.get('created', '?')}  ganzoo {info.manifest.get('ganzoo_version', '?')}  "
        f"{len(files)} files, {_size(sum(e['size'] for e in files.values()))}"
    )
    if info.metrics:
        table = Table(title="metrics", title_justify="left")
        for column in ("metric", "value", "generated images", "real images"):
            table.add_column(column)
        for key, entry in info.metrics.items():
            entry = entry if isinstance(entry, dict) else {"value": entry}
            value = entry.get("value")
            generated, real = entry.get("samples", entry.get("n_fake", "unknown")), entry.get("n_real", "unknown")
            table.add_row(str(key), f"{value:.6g}" if isinstance(value, (int, float)) else str(value), str(generated), str(real))
        typer.echo(_render(table))
    typer.echo(info.card)


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise GanzooError(f"cannot read metrics from {path}: {error}") from None
    if not isinstance(data, dict):
        raise GanzooError(f"{path} must hold a JSON object of metrics")
    return data


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} B"


def _render(table: Table) -> str:
    with open(os.devnull, "w") as sink:
        capture = Console(width=max(console.width, 120), record=True, file=sink)
        capture.print(table)
    return capture.export_text().rstrip()
