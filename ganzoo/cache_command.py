"""`ganzoo cache info` and `ganzoo cache clear`: what the caches hold, and emptying them."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer
from rich.table import Table

from .cache_entries import KINDS, Entry, entries, get_kind, in_use, kind_dir
from .caches import MAX_GB_ENV, clear, disk_size, leftovers, size_bound, strays
from .console import render
from .paths import ganzoo_home

cache_app = typer.Typer(help="See and clear ganzoo's caches ($GANZOO_HOME/cache): datasets, features, weights, hub-pulls.", no_args_is_help=True)


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp is not None else "-"


def _bound_text() -> str:
    bound = size_bound()
    return f"size bound {human_size(bound)} ({MAX_GB_ENV})" if bound is not None else f"no size bound (set {MAX_GB_ENV})"


@cache_app.command("info")
def info(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also one line per entry: key, size, last use, what it holds.")] = False) -> None:
    """Each cache: entries, size, oldest and newest use, and with --verbose what each entry holds."""
    typer.echo(f"caches in {ganzoo_home() / 'cache'}; {_bound_text()}")
    table = Table(title_justify="left")
    for column in ("cache", "entries", "size", "in use", "oldest use", "newest use", "leftovers", "holds"):
        table.add_column(column, justify="right" if column in ("entries", "size", "in use", "leftovers") else "left")
    listed: list[tuple[Entry, bool]] = []
    for kind in KINDS.values():
        found = entries(kind.name)
        used = [in_use(e) for e in found]
        listed += list(zip(found, used))
        junk = sum(disk_size(p) for p in leftovers(kind.name, found))
        table.add_row(
            kind.name, str(len(found)), human_size(sum(e.size for e in found)), str(sum(used)),
            when(found[0].last_used if found else None), when(found[-1].last_used if found else None), human_size(junk), kind.description,
        )
    typer.echo(render(table))
    if verbose:
        for entry, used in listed:
            use = f"used {when(entry.last_used)}" + (" (in use)" if used else "")
            typer.echo(f"{entry.kind:<9}  {entry.key}  {human_size(entry.size)}  made {when(entry.created)}, {use}: {entry.description}")
    for path in strays():
        typer.echo(f"also in the cache directory: {path} ({human_size(disk_size(path))}), not a cache of this ganzoo version; delete it by hand if unneeded")


@cache_app.command("clear")
def clear_command(
    kind: Annotated[Optional[str], typer.Argument(help="datasets, features, weights or hub-pulls. (default: all but weights)")] = None,
    older_than: Annotated[Optional[float], typer.Option("--older-than", metavar="DAYS", min=0, help="Only entries not used for DAYS days.")] = None,
) -> None:
    """Remove cache entries (never one a running ganzoo uses). Converted weights go only when named."""
    kinds = [get_kind(kind).name] if kind is not None else None
    result = clear(kinds, older_than)
    freed = sum(e.size for e in result.removed) + result.leftover_bytes
    for name in kinds or [k.name for k in KINDS.values() if k.evictable]:
        removed = [e for e in result.removed if e.kind == name]
        kept = [e for e in result.in_use if e.kind == name]
        older = f" not used in {older_than:g} day(s)" if older_than is not None else ""
        line = f"{name}: removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}{older} ({human_size(sum(e.size for e in removed))})"
        typer.echo(line + (f"; kept {len(kept)} in use" if kept else "") + f"; {len(entries(name))} left in {kind_dir(name)}")
    if result.leftover_bytes:
        typer.echo(f"removed {human_size(result.leftover_bytes)} of leftovers (interrupted writes, older layouts)")
    typer.echo(f"freed {human_size(freed)}")
    if kind is None:
        typer.echo("converted weights were kept: `ganzoo cache clear weights` removes them")

