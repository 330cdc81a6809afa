"""The `ganzoo` command line: a thin Typer layer over the library."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup
from rich.table import Table

from . import __version__
from .console import ConsoleHandler, console, logger
from .errors import GanzooError

LIST_KINDS = {"datasets": "datasets", "archs": "architectures", "losses": "losses", "metrics": "metrics", "augmentations": "augmentations"}

class ErrorsAsOneLine(TyperGroup):
    """The root command group: a GanzooError from any command, ganzoo's or a plugin's, becomes
    one line on stderr and exit code 2 (the traceback with GANZOO_DEBUG=1)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except GanzooError as error:
            if os.environ.get("GANZOO_DEBUG"):
                raise
            console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(error, "exit_code", 2)) from None


app = typer.Typer(
    cls=ErrorsAsOneLine,
    name="ganzoo",
    help="A plugin-based GAN zoo for small medical-imaging datasets. Research use only, not for diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        print(f"ganzoo {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = None,
) -> None:
    """Configure logging and warnings for the CLI."""
    if not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
        logger.addHandler(ConsoleHandler())
        logger.setLevel(logging.INFO)
    warnings.showwarning = _show_warning


def _parse_betas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise GanzooError(f"--betas must be two numbers like 0.5,0.999, got {text!r}") from None
    if len(values) != 2:
        raise GanzooError(f"--betas must be two numbers like 0.5,0.999, got {text!r}")
    return values


def _parse_loss_args(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs; values become int, float or bool when they look like one."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GanzooError(f"--loss-arg must be KEY=VALUE, got {item!r}")
        value: Any = raw
        for convert in (int, float):
            try:
                value = convert(raw)
                break
            except ValueError:
                continue
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        parsed[key.replace("-", "_")] = value
    return parsed


@app.command()
def train(
    arch: Annotated[Optional[str], typer.Option(help="Architecture (ganzoo list archs). (default: dcgan)")] = None,
    loss: Annotated[Optional[str], typer.Option(help="Loss (ganzoo list losses). (default: the architecture's)")] = None,
    res: Annotated[Optional[int], typer.Option(help="Resolution, 64 or 128. (default: 64)")] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 (gray) or 3 (gray replicated). (default: 1)")] = None,
    noise_dim: Annotated[Optional[int], typer.Option(help="Length of z. (default: 100)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name. (default: folder with --data, else synthetic-cxr)")] = None,
    data: Annotated[Optional[str], typer.Option(help="Directory of PNG/JPEG images.")] = None,
    label: Annotated[Optional[str], typer.Option(help="Train on this class only (subfolder or metadata.csv label).")] = None,
    images: Annotated[Optional[int], typer.Option(help="Use at most N images (seeded subset).")] = None,
    data_seed: Annotated[Optional[int], typer.Option(help="Seed of the subset / synthetic data. (default: 0)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (passes of the discriminator over the data). (default: 25)")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Generator steps, instead of --epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size. (default: 128)")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate. (default: per loss)")] = None,
    betas: Annotated[Optional[str], typer.Option(help="Adam betas, e.g. 0.5,0.999. (default: per loss)")] = None,
    n_critic: Annotated[Optional[int], typer.Option(help="Discriminator steps per generator step. (default: per loss)")] = None,
    gp_lambda: Annotated[Optional[float], typer.Option(help="Gradient-penalty weight (wgan-gp). (default: 10)")] = None,
    loss_arg: Annotated[Optional[list[str]], typer.Option(help="Extra loss option KEY=VALUE (repeatable), e.g. r1_gamma=10.")] = None,
    noise_factor: Annotated[Optional[float], typer.Option(help="Extra f*randn added to z (the study's noise factor). (default: 0)")] = None,
    augment: Annotated[Optional[str], typer.Option(help="Discriminator augmentation, e.g. diffaugment:color,translation,cutout.")] = None,
    ema: Annotated[Optional[float], typer.Option(help="Keep an EMA of the generator with this decay (e.g. 0.999); used for sampling.")] = None,
    normalize: Annotated[Optional[str], typer.Option(help="none ([-1, 1]) or torch (Normalize with data mean/std). (default: none)")] = None,
    clahe: Annotated[Optional[bool], typer.Option("--clahe/--no-clahe", help="CLAHE equalisation. (default: on)")] = None,
    clahe_clip: Annotated[Optional[float], typer.Option(help="CLAHE clip limit. (default: 2.0)")] = None,
    clahe_tile: Annotated[Optional[int], typer.Option(help="CLAHE tile grid size. (default: 8)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of weights, noise and data order. (default: 0)")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N. (default: auto)")] = None,
    sample_every: Annotated[Optional[int], typer.Option(help="Save a sample grid every N epochs (and at the end).")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Checkpoint every N epochs (and at the end).")] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option(help="Keep the newest K checkpoints. (default: 3)")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="Compute FID every N epochs (and at the end); keep the best as best/.")] = None,
    eval_n: Annotated[Optional[int], typer.Option(help="Generated images per FID (default: as many as training images).")] = None,
    log_every: Annotated[Optional[int], typer.Option(help="Log losses every N steps. (default: 10)")] = None,
    out: Annotated[Optional[str], typer.Option(help="Run directory. (default: runs/<arch>-<res>-<timestamp>)")] = None,
    resume: Annotated[Optional[str], typer.Option(help="Continue the run in this directory (or checkpoint); 'auto': the --out run if it has a checkpoint.")] = None,
    on_nan: Annotated[Optional[str], typer.Option(help="stop (default): a NaN/Inf loss ends training; skip: skip that update.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32 (default) or bf16 (autocast convolutions; weights, losses and penalty stay fp32).")] = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="NHWC layout. (default: on)")] = None,
    fused: Annotated[Optional[bool], typer.Option("--fused/--no-fused", help="fp32-statistics InstanceNorm, one critic pass on cat(real, fake); on a GPU also fused Adam, cudnn benchmark and the first convolution as a matrix product. (default: on)")] = None,
    cuda_graphs: Annotated[Optional[bool], typer.Option("--cuda-graphs/--no-cuda-graphs", help="Replay whole iterations as CUDA graphs, eager if capture fails. (default: on for a GPU)")] = None,
    micro_batch: Annotated[Optional[int], typer.Option(help="Critic steps in chunks of N images with gradients summed, where critic and loss are per-sample; 0: off. (default: 32 on the CPU, off on a GPU)")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML or YAML file with these options (underscores for dashes).")] = None,
) -> None:
    """Train a GAN. Every option can also come from --config; flags override the file."""
    from .config import TrainConfig, read_config_file
    from .trainer import train as run_training

    given = {k: v for k, v in locals().items() if k not in ("config", "TrainConfig", "read_config_file", "run_training") and v is not None}
    if "betas" in given:
        given["betas"] = _parse_betas(given["betas"])
    if "loss_arg" in given:
        given["loss_args"] = _parse_loss_args(given.pop("loss_arg"))
    values = read_config_file(config) if config else {}
    train_config = TrainConfig.from_dict({**{k.replace("-", "_"): v for k, v in values.items()}, **given})
    checkpoint = run_training(train_config)
    console.print(f"checkpoint: {checkpoint}", highlight=False)


@app.command()
def generate(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint or run directory, or hub:NAME[@VERSION] / hf-hub:ORG/NAME.")],
    n: Annotated[int, typer.Option("-n", "--n", min=0, help="Number of images.")] = 64,
    out: Annotated[Path, typer.Option(help="Directory for the PNG files.")] = Path("samples"),
    grid: Annotated[Optional[Path], typer.Option(help="Also write a grid of the images to this PNG.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise: the same seed gives the same images.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
) -> None:
    """Write N images from a checkpoint as PNG files at its resolution and channels."""
    from .generate import generate_images

    paths = generate_images(checkpoint, n=n, out=out, seed=seed, grid=grid, device=device)
    console.print(f"wrote {len(paths)} image(s) to {out}" + (f" and a grid to {grid}" if grid else ""), highlight=False)


@app.command("list")
def list_(
    kind: Annotated[Optional[str], typer.Argument(help="datasets, archs, losses, metrics or augmentations; all when omitted.")] = None,
    filter: Annotated[str, typer.Option(help="Glob on names, e.g. 'wgan*'.")] = "*",
) -> None:
    """List what the installed plugins registered, with each plugin's version."""
    from .plugins import plugin_versions, registry

    if kind is not None and kind not in LIST_KINDS:
        raise GanzooError(f"unknown kind {kind!r}; use one of {', '.join(LIST_KINDS)}")
    versions = plugin_versions()
    for label, name in LIST_KINDS.items():
        if kind not in (None, label):
            continue
        reg = registry(name)
        table = Table(title=label, title_justify="left")
        for column in ("name", "plugin", "version", "description"):
            table.add_column(column)
        for entry in reg.entries():
            if entry.name in reg.list(filter):
                table.add_row(entry.name, entry.plugin, versions.get(entry.plugin, ""), getattr(entry.obj, "description", "") or (entry.obj.__doc__ or "").strip().split("\n")[0])
        typer.echo(_render(table))


@app.command()
def plugins() -> None:
    """Show each plugin: version, source, what it registered, and whether it failed."""
    from .plugins import plugin_infos

    table = Table(title="plugins", title_justify="left")
    for column in ("name", "version", "source", "registered", "status"):
        table.add_column(column)
    for info in plugin_infos():
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(info.registered.items()))
        table.add_row(info.name, info.version, info.source, registered, f"FAILED: {info.error}" if info.error else "ok")
    typer.echo(_render(table))


def _render(table: Table) -> str:
    from rich.console import Console

    capture = Console(width=max(console.width, 120), record=True, file=open(os.devnull, "w"))
    capture.print(table)
    return capture.export_text().rstrip()


_commands_registered = False


def build_app() -> typer.Typer:
    """The app with the commands that plugins add through `ganzoo_register_commands`."""
    global _commands_registered
    if not _commands_registered:
        from .plugins import register_commands

        _commands_registered = True
        register_commands(app)
    return app


def main() -> None:
    build_app()(prog_name="ganzoo")
