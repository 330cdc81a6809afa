"""Where ganzoo keeps its caches, and atomic file writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import GanzooError


def ganzoo_home() -> Path:
    """`$GANZOO_HOME`, default `~/.cache/ganzoo`."""
    return Path(os.environ.get("GANZOO_HOME") or Path.home() / ".cache" / "ganzoo")


def cache_dir(kind: str) -> Path:
    path = ganzoo_home() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def fsync_dir(path: Path) -> None:
    """Flush `path` to disk: a directory's entries (after a rename into it), or a file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync, rename: never a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(obj: Any) -> str:
    """JSON as ganzoo writes it everywhere: sorted keys, indent 2, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (weights files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_output_dir(out: Path) -> None:
    """Create the run directory and prove it is writable before any training time is spent."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise GanzooError(f"cannot write to output directory {out}: {error.strerror or error}") from None


def default_run_dir(arch: str, res: int) -> Path:
    """runs/<arch>-<res>-<time>: where a run goes without --out."""
    return Path("runs") / f"{arch}-{res}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
