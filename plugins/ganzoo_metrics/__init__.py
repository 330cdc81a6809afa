"""Built-in plugin: standard FID, KID and precision/recall via torch-fidelity, offline.

Registering costs nothing: torch-fidelity is imported only when a metric is computed, so
`ganzoo --help`, `ganzoo list` and `ganzoo train` stay fast.
"""

from __future__ import annotations

import typer

from ganzoo.hookspecs import Register, hookimpl


@hookimpl
def ganzoo_register_metrics(register: Register) -> None:
    from .measures import METRICS

    for name, metric in METRICS.items():
        register(name, metric)


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    from .command import register

    register(app)
