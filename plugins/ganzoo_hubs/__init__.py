"""Built-in plugin: model-hub backends (local-dir, hf-hub) and the `ganzoo hub` commands.

The backends are imported when the hook runs, so loading the plugin imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganzoo.api import Register, hookimpl

if TYPE_CHECKING:
    import typer


@hookimpl
def ganzoo_register_hubs(register: Register) -> None:
    from .hf import HfHub
    from .local import LocalDirHub

    register(LocalDirHub.scheme, LocalDirHub)
    register(HfHub.scheme, HfHub)


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    from .cli import hub_app

    app.add_typer(hub_app, name="hub")
