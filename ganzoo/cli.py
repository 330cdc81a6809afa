"""The `ganzoo` command line: a thin Typer layer over the library."""

from __future__ import annotations

import inspect
import logging
import os
import sys
import typing
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup
from rich.markup import escape
from rich.table import Table

from . import __version__
from .cache_command import cache_app
from .console import ConsoleHandler, console, logger, render
from .errors import GanzooError

LIST_KINDS = {"datasets": "datasets", "archs": "architectures", "losses": "losses", "metrics": "metrics", "augmentations": "augmentations", "executors": "executors", "audits": "audits"}

class ErrorsAsOneLine(TyperGroup):
    """The root command group: a GanzooError from any command, ganzoo's or a plugin's, becomes
    one line on stderr and exit code 2 (the traceback with GANZOO_DEBUG=1)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except GanzooError as error:
            if os.environ.get("GANZOO_DEBUG"):
                raise
            console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(error, "exit_code", 2)) from None


app = typer.Typer(
    cls=ErrorsAsOneLine,
    name="ganzoo",
    help="A plugin-based GAN zoo for small medical-imaging datasets. Research use only, not for diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: readable at 80 columns (rich's option table squeezed descriptions into
    # ~20 characters beside the long --x/--no-x flags), and --help skips importing rich's renderer.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


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


def _train_parameters() -> list[inspect.Parameter]:
    """`ganzoo train`'s flags, made from the TrainConfig declarations (ganzoo/config.py)."""
    from .config import LOSS_ARG_ALIASES, TrainConfig, declared_options, flag_name

    hints = typing.get_type_hints(TrainConfig)
    params = []

    def add(name: str, kind: Any, *decls: str, help: str) -> None:
        annotation = Annotated[Optional[kind], typer.Option(*decls, help=help, show_default=False)]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))

    for f in declared_options():
        base = next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
        default = f.metadata["default_text"] or (None if f.default is None else ("on" if f.default is True else "off" if f.default is False else f.default))
        help = f.metadata["help"] + (f" (default: {default})" if default is not None else "")
        flag = "--" + flag_name(f.name)
        if f.name == "loss_args":
            add("loss_arg", list[str], "--loss-arg", help=help)
        elif f.name == "betas":
            add(f.name, str, flag, help=help)
        elif base is bool:
            add(f.name, bool, f"{flag}/--no-{flag_name(f.name)}", help=help)
        else:
            add(f.name, base, flag, help=help)
    for name, (kind, help) in LOSS_ARG_ALIASES.items():
        add(name, kind, "--" + flag_name(name), help=help)
    add("config", Path, "--config", help="TOML or YAML file with these options (underscores for dashes); flags override it.")
    return params


def train(**given: Any) -> None:
    """Train a GAN. Every option can also come from --config; flags override the file."""
    from .config import TrainConfig, read_config_file
    from .runs import train as run_training

    config = given.pop("config", None)
    given = {k: v for k, v in given.items() if v is not None}
    if "betas" in given:
        given["betas"] = _parse_betas(given["betas"])
    if "loss_arg" in given:
        given["loss_args"] = _parse_loss_args(given.pop("loss_arg"))
    values = {k.replace("-", "_"): v for k, v in (read_config_file(config) if config else {}).items()}
    if "loss_args" in given and "loss_args" in values:
        given["loss_args"] = {**values["loss_args"], **given["loss_args"]}
    checkpoint = run_training(TrainConfig.from_dict({**values, **given}))
    console.print(escape(f"checkpoint: {checkpoint}"), highlight=False)


train.__signature__ = inspect.Signature(_train_parameters())  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}  # type: ignore[attr-defined]
app.command()(train)


@app.command()
def generate(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint or run directory, or hub:NAME[@VERSION] / hf-hub:ORG/NAME.")],
    n: Annotated[int, typer.Option("-n", "--n", min=0, help="Number of images.")] = 64,
    out: Annotated[Path, typer.Option(help="Directory for the PNG files.")] = Path("samples"),
    grid: Annotated[Optional[Path], typer.Option(help="Also write a grid of the images to this PNG.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise: the same seed gives the same images.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace the sample-* files already in --out (they are removed first).")] = False,
    bit_depth: Annotated[int, typer.Option("--bit-depth", help="8 or 16 bits per pixel (16: straight from the generator's floats).")] = 8,
    format: Annotated[str, typer.Option("--format", help="png, or dicom (Secondary Capture marked derived and synthetic; needs ganzoo[dicom]).")] = "png",
) -> None:
    """Write N images from a checkpoint as PNG (or DICOM) files at its resolution and channels,
    each with a JSON sidecar naming the model's sha256, the seed, its index and `synthetic`."""
    from .generate import generate_images

    paths = generate_images(checkpoint, n=n, out=out, seed=seed, grid=grid, device=device, bit_depth=bit_depth, format=format, overwrite=overwrite)
    console.print(escape(f"wrote {len(paths)} image(s) to {out}" + (f" and a grid to {grid}" if grid else "")), highlight=False)


@app.command("list")
def list_(
    kind: Annotated[Optional[str], typer.Argument(help="datasets, archs, losses, metrics, augmentations, executors or audits; all when omitted.")] = None,
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
                description = getattr(entry.obj, "description", "") or (entry.obj.__doc__ or "").strip().split("\n")[0]
                table.add_row(*(escape(text) for text in (entry.name, entry.plugin, versions.get(entry.plugin, ""), description)))
        typer.echo(render(table))


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
    typer.echo(render(table))


@app.command()
def split(
    data: Annotated[Optional[str], typer.Argument(help="The data folder (or path) to split.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name (ganzoo list datasets). (default: folder)")] = None,
    holdout: Annotated[float, typer.Option(help="Fraction of each label held out.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    group_by: Annotated[Optional[str], typer.Option(help="metadata.csv column whose values (patient, original image) stay on one side.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the split. (default: DATA/ganzoo-split.json, found there by train and evaluate)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing split file.")] = False,
) -> None:
    """Hold out real images once: train uses the rest; evaluate, --eval-every, sweep and compare score on them."""
    from .split_data import describe_sides, make_split

    path, images, sides = make_split(data, dataset, holdout, seed, group_by, out, overwrite)
    console.print(escape(f"wrote {path}: {describe_sides(images, sides)}"), highlight=False)
    if out is not None:
        console.print(escape(f"train and evaluate with --split {path}"), highlight=False)


_commands_registered = False


app.add_typer(cache_app, name="cache")


def build_app() -> typer.Typer:
    """The app with the commands that plugins add through `ganzoo_register_commands`."""
    global _commands_registered
    if not _commands_registered:
        from .plugins import register_commands

        _commands_registered = True
        register_commands(app)
    return app


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # answered before any plugin is loaded
        print(f"ganzoo {__version__}")
        return
    build_app()(prog_name="ganzoo")
