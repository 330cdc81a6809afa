"""Built-in plugin: model-hub backends (local-dir, hf-hub) and the `ganzoo hub` commands."""

from __future__ import annotations

import typer

from ganzoo.api import Register, hookimpl

from .hf import HfHub
from .local import LocalDirHub


@hookimpl
def ganzoo_register_hubs(register: Register) -> None:
    register(LocalDirHub.scheme, LocalDirHub)
    register(HfHub.scheme, HfHub)


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    from .cli import hub_app

    app.add_typer(hub_app, name="hub")
