"""ganzoo's caches as a whole: writing an entry atomically, clearing, and the size bound.

Writers fill a temporary path and commit it under the cache's lock (see `cache_entries` for
the entry format): when two runs fill the same entry at once, both succeed and the first
commit is kept. `$GANZOO_CACHE_MAX_GB` bounds the evictable caches; least recently used
entries give way, never one in use and never converted weights.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator

from .cache_entries import (
    KINDS,
    LOCK_FILE,
    TEMP_MARK,
    Entry,
    entries,
    entry_path,
    get_kind,
    kind_dir,
    kind_lock,
    pin_entry,
    read_record,
    record_path,
    remove_locked,
    remove_path,
)
from .console import logger
from .errors import GanzooError
from .paths import atomic_write_text, dump_json, fsync_dir, ganzoo_home

MAX_GB_ENV = "GANZOO_CACHE_MAX_GB"
LEFTOVER_AGE_S = 3600.0  # a file that belongs to no entry and is older than this is debris


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.stat().st_size


def _fsync_tree(path: Path) -> None:
    """Flush the payload to disk before it is committed, so a crash leaves no empty entry."""
    for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        fsync_dir(file)


def _committed(kind: str, key: str) -> bool:
    try:
        read_record(kind, key)
        return True
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def write_entry(kind: str, key: str, description: str, details: dict[str, Any] | None = None, *, pin: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write the payload at (a file or a directory), then commit it.

    When another run committed the same entry meanwhile, that one is kept and this copy is
    dropped (entries are keyed by content, so both are the same). An exception in the block
    leaves nothing behind. `pin=True` pins the committed entry (see `pin_entry`).
    """
    payload = entry_path(kind, key)
    payload.parent.mkdir(parents=True, exist_ok=True)
    tmp = payload.with_name(f".{payload.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    committed = False
    try:
        yield tmp
        if not tmp.exists():
            raise GanzooError(f"nothing was written for cache entry {kind}/{key}")
        _fsync_tree(tmp)
        with kind_lock(kind):
            if not _committed(kind, key):
                record_path(payload).unlink(missing_ok=True)
                remove_path(payload)
                os.replace(tmp, payload)
                record = {"kind": kind, "key": key, "description": description, "size": _size(payload), "created": time.time(), "details": details or {}}
                atomic_write_text(record_path(payload), dump_json(record))
                fsync_dir(payload.parent)
                committed = True
            if pin and pin_entry(kind, key) is None:
                raise GanzooError(f"cache entry {kind}/{key} vanished right after it was written")
    finally:
        if tmp.exists() or tmp.is_symlink():
            remove_path(tmp)
    if committed:
        enforce_size_bound(keep={(kind, key)})


# -- clearing and the size bound ---------------------------------------------------------------------------


def leftovers(kind: str, found: list[Entry] | None = None) -> list[Path]:
    """Files of a cache that belong to no entry: interrupted writes, older ganzoo layouts."""
    root = kind_dir(kind)
    if not root.is_dir():
        return []
    owned = {e.path for e in (entries(kind) if found is None else found)}
    owned |= {record_path(p) for p in owned} | {root / LOCK_FILE}
    return [
        p for p in root.rglob("*")
        if (p.is_file() or p.is_symlink()) and p not in owned and not any(parent in owned for parent in p.parents) and not _writer_alive(p.relative_to(root))
    ]


def _writer_alive(path: Path) -> bool:
    """Whether a temporary path (relative to its cache) belongs to a write still running on this machine."""
    for part in path.parts:
        if TEMP_MARK in part:
            with contextlib.suppress(ValueError, IndexError):
                pid = int(part.rsplit(TEMP_MARK, 1)[1].split("-")[0])
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return False
                except PermissionError:
                    return True
                return True
    return False


def _clear_leftovers(kind: str, cutoff: float) -> int:
    """Remove leftovers last changed before `cutoff` (never a running write's); bytes freed."""
    freed = 0
    payloads = {e.path for e in entries(kind)}
    for path in leftovers(kind):
        with contextlib.suppress(OSError):
            stat = path.lstat()
            if stat.st_mtime < cutoff:
                path.unlink()
                freed += stat.st_size
    root = kind_dir(kind)
    for directory in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            empty = directory not in payloads and not any(directory.iterdir())
            if empty and directory.stat().st_mtime < cutoff and not _writer_alive(directory.relative_to(root)):
                directory.rmdir()
    return freed


@dataclass
class Cleared:
    """What `clear` did: entries removed, entries kept because in use, leftover bytes removed."""

    removed: list[Entry] = field(default_factory=list)
    in_use: list[Entry] = field(default_factory=list)
    leftover_bytes: int = 0


def clear(kinds: list[str] | None = None, older_than_days: float | None = None) -> Cleared:
    """Remove the entries of these caches (default: all but `weights`) not in use, only those
    unused for `older_than_days` when given, and their leftovers."""
    now = time.time()
    cutoff = now - older_than_days * 86400 if older_than_days is not None else None
    result = Cleared()
    for kind in kinds if kinds is not None else [k.name for k in KINDS.values() if k.evictable]:
        get_kind(kind)
        if not kind_dir(kind).is_dir():
            continue
        with kind_lock(kind):
            for entry in entries(kind):
                if cutoff is None or entry.last_used < cutoff:
                    (result.removed if remove_locked(kind, entry.key, False) else result.in_use).append(entry)
            result.leftover_bytes += _clear_leftovers(kind, min(cutoff or now, now - LEFTOVER_AGE_S))
    return result


def size_bound() -> int | None:
    """`$GANZOO_CACHE_MAX_GB` in bytes (GB = 10^9 bytes), or None when unset."""
    raw = os.environ.get(MAX_GB_ENV, "").strip()
    if not raw:
        return None
    try:
        gb = float(raw)
    except ValueError:
        gb = -1.0
    if not 0 <= gb < float("inf"):
        raise GanzooError(f"{MAX_GB_ENV} must be a number of GB >= 0, got {raw!r}")
    return int(gb * 1e9)


def enforce_size_bound(keep: Collection[tuple[str, str]] = ()) -> list[Entry]:
    """Evict least recently used entries until the evictable caches fit `$GANZOO_CACHE_MAX_GB`;
    never one in use, nor one in `keep` (just written), nor converted weights."""
    bound = size_bound()
    if bound is None:
        return []
    pool = [e for kind in KINDS.values() if kind.evictable for e in entries(kind.name)]
    total = sum(e.size for e in pool)
    evicted = []
    for entry in sorted(pool, key=lambda e: e.last_used):
        if total <= bound:
            break
        if (entry.kind, entry.key) in keep:
            continue
        with kind_lock(entry.kind):
            if remove_locked(entry.kind, entry.key, False):
                total -= entry.size
                evicted.append(entry)
                logger.info("evicted %s cache entry %s (%s, %.1f MB) to stay under %s=%s", entry.kind, entry.key, entry.description, entry.size / 1e6, MAX_GB_ENV, os.environ[MAX_GB_ENV])
    if total > bound:
        logger.info("caches hold %.2f GB, over %s=%s: the rest is in use or was just written", total / 1e9, MAX_GB_ENV, os.environ[MAX_GB_ENV])
    return evicted


SCRATCH = ("hub-staging",)  # temporary directories of running commands, not caches


def strays() -> list[Path]:
    """What else lies in `$GANZOO_HOME/cache`: caches of an older ganzoo, or files put there by hand."""
    root = ganzoo_home() / "cache"
    known = set(KINDS) | set(SCRATCH)
    return sorted(p for p in root.iterdir() if p.name not in known) if root.is_dir() else []


def disk_size(path: Path) -> int:
    """Bytes under a path (0 when it is gone)."""
    with contextlib.suppress(OSError):
        return _size(path)
    return 0
