"""The hooks a ganzoo plugin can implement. Every hook is prefixed `ganzoo_`.

Each `register` callable takes `(name, obj)`; the host records which plugin registered
what and warns on duplicates. Plugins never touch the registries directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # typer only names the annotation: loading plugins imports no CLI library
    import typer

hookspec = pluggy.HookspecMarker("ganzoo")
hookimpl = pluggy.HookimplMarker("ganzoo")

Register = Callable[[str, Any], None]


@hookspec
def ganzoo_register_datasets(register: Register) -> None:
    """Register dataset builders: `register(name, DatasetSpec(...))`."""


@hookspec
def ganzoo_register_architectures(register: Register) -> None:
    """Register GAN architectures: `register(name, Architecture(...))`."""


@hookspec
def ganzoo_register_losses(register: Register) -> None:
    """Register losses: `register(name, loss_class)`; the class takes the loss's keyword args."""


@hookspec
def ganzoo_register_metrics(register: Register) -> None:
    """Register metrics: `register(name, Metric subclass instance)`."""


@hookspec
def ganzoo_register_feature_extractors(register: Register) -> None:
    """Register feature spaces for metrics and the audit: `register(name, FeatureExtractor subclass instance)`."""


@hookspec
def ganzoo_register_augmentations(register: Register) -> None:
    """Register differentiable discriminator augmentations: `register(name, Augmentation(...))`."""


@hookspec
def ganzoo_register_hubs(register: Register) -> None:
    """Register model-hub backends: `register(scheme, backend_class)` for `scheme:` locations."""


@hookspec
def ganzoo_register_executors(register: Register) -> None:
    """Register executors that run a study's trainings: `register(name, Executor subclass)`."""


@hookspec
def ganzoo_register_audits(register: Register) -> None:
    """Register audits of a model's images: `register(name, function)`; `ganzoo.audit(..., kind=name)` calls it."""


@hookspec
def ganzoo_register_commands(app: typer.Typer) -> None:
    """Add CLI commands to `app`, a `typer.Typer` (use `@app.command()`)."""
