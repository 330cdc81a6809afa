"""Built-in plugin: the study (sweep, compare, classify, augment) as commands and functions.

`from ganzoo_study import sweep, compare, classify, augment` gives the library functions;
each writes results.csv, results.json and report.md into its output directory. They are
imported on first use, so registering the commands imports none of the study's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ganzoo.api import hookimpl

if TYPE_CHECKING:
    import typer

FUNCTIONS = {"sweep": "sweeps", "compare": "comparison", "classify": "classifier", "augment": "rebalance"}
__all__ = ["augment", "classify", "compare", "sweep"]


def __getattr__(name: str) -> Any:
    if name not in FUNCTIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{FUNCTIONS[name]}", __name__), name)


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    from .commands import register

    register(app)
