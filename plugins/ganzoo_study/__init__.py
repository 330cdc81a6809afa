"""Built-in plugin: the study commands (sweep, compare, classify, augment).

The work is done by `ganzoo.study`; these commands only parse options and print where the
reports went. Heavy imports happen when a command runs, not when it is registered.
"""

from __future__ import annotations

import typer

from ganzoo.hookspecs import hookimpl


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    from .commands import register

    register(app)
