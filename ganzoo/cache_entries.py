"""Cache entries under `$GANZOO_HOME/cache/<kind>`: where they live, reading them under a lock, removing them.

An entry is a payload (a file or a directory) at `<kind>/<key>` and a record beside it,
`<key>.entry.json` (what it is, when it was made, its size). The record is written last and
commits the entry: readers ignore a payload without one, so nobody sees half an entry. Its
mtime is the entry's last use. A reader holds a shared flock on the record while it reads
(`open_entry`), or for the rest of the process when it hands out a path (`pin_entry`); removal
takes an exclusive lock without waiting, so an entry in use is never removed. Commits and
removals of one cache take its `.lock` file in turn.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import GanzooError
from .paths import ganzoo_home

try:
    import fcntl
except ImportError:  # no flock (Windows): entries are still committed atomically, only unlocked
    fcntl = None  # type: ignore[assignment]

RECORD_SUFFIX = ".entry.json"
LOCK_FILE = ".lock"
TEMP_MARK = ".tmp-"


@dataclass(frozen=True)
class CacheKind:
    """One cache: `$GANZOO_HOME/cache/<name>`. Only `evictable` ones count towards and give way to the size bound."""

    name: str
    description: str
    evictable: bool = True


KINDS: dict[str, CacheKind] = {
    kind.name: kind
    for kind in (
        CacheKind("datasets", "decoded image folders"),
        CacheKind("features", "real-image features"),
        CacheKind("weights", "converted weights", evictable=False),
        CacheKind("hub-pulls", "verified hub models"),
    )
}


@dataclass(frozen=True)
class Entry:
    """A committed cache entry, as its record describes it."""

    kind: str
    key: str
    path: Path
    description: str
    size: int
    created: float
    last_used: float
    details: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def get_kind(kind: str) -> CacheKind:
    if kind not in KINDS:
        raise GanzooError(f"unknown cache {kind!r}; the caches are: {', '.join(KINDS)}")
    return KINDS[kind]


def kind_dir(kind: str) -> Path:
    """Where a cache lives (not created here)."""
    return ganzoo_home() / "cache" / get_kind(kind).name


def entry_path(kind: str, key: str) -> Path:
    """The payload path of an entry; a key is a relative path of plain names (no dot names)."""
    parts = key.split("/")
    if not key or any(not p or p.startswith(".") or "\\" in p for p in parts) or key.endswith(RECORD_SUFFIX):
        raise GanzooError(f"invalid cache key {key!r}")
    return kind_dir(kind).joinpath(*parts)


def record_path(payload: Path) -> Path:
    return payload.with_name(payload.name + RECORD_SUFFIX)


# -- locks -------------------------------------------------------------------------------------------


def _flock(fd: int, how: int) -> bool:
    """flock; False when a non-blocking lock is held elsewhere (always True without flock)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, how)
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def kind_lock(kind: str) -> Iterator[Path]:
    """The cache's write lock: commits and removals of one cache happen one at a time."""
    directory = kind_dir(kind)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock(fd, fcntl.LOCK_EX if fcntl else 0)
        yield directory
    finally:
        os.close(fd)


def read_record(kind: str, key: str, fd: int | None = None) -> Entry:
    """The entry a record describes; ValueError/OSError when it or its payload is missing or damaged."""
    payload = entry_path(kind, key)
    record = record_path(payload)
    if fd is None:
        raw, mtime = record.read_bytes(), record.stat().st_mtime
    else:
        raw, mtime = b"".join(iter(lambda: os.read(fd, 1 << 16), b"")), os.fstat(fd).st_mtime
    data = json.loads(raw)
    if not isinstance(data, dict) or not payload.exists():
        raise ValueError(f"record {record} without its payload")
    return Entry(
        kind, key, payload, str(data.get("description", "")), int(data.get("size", 0)), float(data.get("created", mtime)), mtime, dict(data.get("details") or {})
    )


def _open_record(kind: str, key: str) -> tuple[int, Entry] | None:
    """(fd holding a shared lock on the record, entry), or None for no committed entry."""
    record = record_path(entry_path(kind, key))
    for _ in range(3):
        try:
            fd = os.open(record, os.O_RDONLY)
        except FileNotFoundError:
            return None
        _flock(fd, fcntl.LOCK_SH if fcntl else 0)
        try:
            if os.stat(record).st_ino != os.fstat(fd).st_ino:
                os.close(fd)  # removed (or replaced) while we waited for the lock: look again
                continue
            entry = read_record(kind, key, fd)
        except (OSError, ValueError):
            os.close(fd)
            return None
        with contextlib.suppress(OSError):  # a cache shared read-only still reads
            os.utime(record)
        return fd, entry
    return None


@contextlib.contextmanager
def open_entry(kind: str, key: str) -> Iterator[Entry | None]:
    """The committed entry (None when there is none), which nobody removes until the block ends.

    Reading marks it used now (for `--older-than` and the size bound).
    """
    opened = _open_record(kind, key)
    if opened is None:
        yield None
        return
    fd, entry = opened
    try:
        yield entry
    finally:
        os.close(fd)


_PINS: dict[tuple[str, str], int] = {}


def pin_entry(kind: str, key: str) -> Entry | None:
    """Like `open_entry`, but held until this process ends: for paths handed out to be read later."""
    opened = _open_record(kind, key)
    if opened is None:
        return None
    fd, entry = opened
    old = _PINS.pop((kind, key), None)
    _PINS[(kind, key)] = fd
    if old is not None:
        os.close(old)
    return entry


def release_pins() -> None:
    """Let go of every entry this process pinned."""
    for fd in _PINS.values():
        os.close(fd)
    _PINS.clear()


def in_use(entry: Entry) -> bool:
    """Whether a reader (this process included) holds the entry now."""
    try:
        fd = os.open(record_path(entry.path), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        free = _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) if fcntl else True
        return not free
    finally:
        os.close(fd)


# -- removing -------------------------------------------------------------------------------


def remove_path(path: Path) -> None:
    """Remove a file or directory; a directory is first renamed away, so it vanishes at once."""
    if path.is_dir() and not path.is_symlink():
        tomb = path.with_name(f".{path.name}.removed-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            path.rename(tomb)
        except FileNotFoundError:
            return
        shutil.rmtree(tomb, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_locked(kind: str, key: str, even_in_use: bool) -> bool:
    """Remove an entry, the caller holding the cache's lock; False when a reader holds it."""
    payload = entry_path(kind, key)
    record = record_path(payload)
    try:
        fd = os.open(record, os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None and not even_in_use and fcntl and not _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
            return False
        record.unlink(missing_ok=True)  # uncommitted first: a reader arriving now finds nothing
        remove_path(payload)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def remove_entry(kind: str, key: str, *, even_in_use: bool = False) -> bool:
    """Remove an entry; False when another reader holds it (unless `even_in_use`: a damaged
    entry, or a re-download asked for). This process's own pin on it is released first."""
    fd = _PINS.pop((kind, key), None)
    if fd is not None:
        os.close(fd)
    with kind_lock(kind):
        return remove_locked(kind, key, even_in_use)


# -- listing -------------------------------------------------------------------


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def entries(kind: str) -> list[Entry]:
    """The committed entries of a cache, oldest use first."""
    root = kind_dir(kind)
    found = []
    for record in root.rglob("*" + RECORD_SUFFIX) if root.is_dir() else ():
        if _visible(record, root):
            with contextlib.suppress(OSError, ValueError, GanzooError):
                found.append(read_record(kind, str(record.relative_to(root).as_posix())[: -len(RECORD_SUFFIX)]))
    return sorted(found, key=lambda e: e.last_used)
