"""One stderr console and progress bar style for the whole package."""

from __future__ import annotations

import io
import logging

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
logger = logging.getLogger("ganzoo")


def progress(*extra_columns: TextColumn, quiet: bool = False) -> Progress:
    """A rich progress bar; it draws only on a terminal (and not when `quiet`), so logs and CI stay clean."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )


class ConsoleHandler(logging.Handler):
    """Log records as `level: message` on the console, which follows the current sys.stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        style = {"WARNING": "yellow", "ERROR": "bold red"}.get(record.levelname, "dim")
        console.print(f"[{style}]{record.levelname.lower()}:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True)


def render(renderable: RenderableType) -> str:
    """Plain text of a rich table (at least 120 columns wide), for stdout: tables are results, not logs."""
    capture = Console(width=max(console.width, 120), record=True, file=io.StringIO())
    capture.print(renderable)
    return capture.export_text().rstrip()
