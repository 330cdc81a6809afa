"""The `local-dir:` hub: a directory (local, shared or network file system) of `<name>/<version>/`.

Every version directory holds the checkpoint files and `manifest.json`. A push copies into
a hidden temp directory, then, holding the hub's lock file, picks the version, writes the
manifest and renames the directory into place: readers see a whole version or none, and
two pushers never take the same version. Versions are never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from ganzoo.api import (
    MANIFEST_FILE,
    CheckpointError,
    GanzooError,
    HubBackend,
    ModelVersion,
    file_entries,
    fsync_dir,
    validate_name,
    validate_version,
    write_manifest,
)

LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 120.0
COPY_BLOCK = 1 << 20
# File locks exclude other processes only; this lock excludes the other threads of this one.
_THREAD_LOCK = threading.Lock()


class LocalDirHub(HubBackend):
    """A hub that is a plain directory; point a team at one shared path."""

    scheme = "local-dir"

    def __init__(self, address: str) -> None:
        if not address:
            raise GanzooError("local-dir needs a directory, e.g. local-dir:/shared/ganzoo-hub")
        super().__init__(address)
        self.root = Path(address).expanduser().absolute()

    @classmethod
    def from_location(cls, address: str) -> tuple[HubBackend, str]:
        """`local-dir:/path/to/hub/NAME[@VERSION]`: the last segment is the model."""
        path = Path(address).expanduser()
        if not address or path.parent == path:
            raise GanzooError(f"local-dir:{address} names no model; write local-dir:/path/to/hub/NAME[@VERSION]")
        return cls(str(path.parent)), path.name

    @property
    def uri(self) -> str:
        return f"{self.scheme}:{self.root}"

    def location(self, ref: str) -> str:
        return f"{self.scheme}:{self.root / ref}"

    # -- paths that never leave the hub -------------------------------------------------

    def _real_dir(self, path: Path, what: str) -> bool:
        """True if `path` is a real directory, False if absent; a symlink or a file is refused."""
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(mode):
            raise GanzooError(f"{path} is a symlink; a hub holds real directories only, so {what} is refused")
        if not stat.S_ISDIR(mode):
            raise GanzooError(f"{path} is not a directory; {what} is refused")
        return True

    def _model_dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def _version_dir(self, name: str, version: str) -> Path:
        model_dir = self._model_dir(name)
        path = model_dir / validate_version(version)
        if not self._real_dir(model_dir, f"model {name!r}") or not self._real_dir(path, f"{name}@{version}"):
            raise GanzooError(f"{name}@{version} not found in {self.uri}{self._available(name)}")
        return path

    def _versions(self, name: str) -> list[str]:
        model_dir = self._model_dir(name)
        if not self._real_dir(model_dir, f"model {name!r}"):
            return []
        return [p.name for p in model_dir.iterdir() if not p.name.startswith(".") and p.is_dir() and not p.is_symlink()]

    def _available(self, name: str) -> str:
        try:
            versions = self._versions(name)
        except GanzooError:
            return ""
        return f"; available: {', '.join(sorted(versions, key=_natural))}" if versions else ""

    def _created(self, name: str, version: str) -> str:
        try:
            return str(json.loads((self.root / name / version / MANIFEST_FILE).read_bytes()).get("created") or "")
        except (OSError, ValueError, AttributeError):
            return ""

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """An exclusive lock on `<hub>/.lock`; the OS drops it if the pusher dies."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.root / LOCK_FILE, flags, 0o664)
        except OSError as error:
            raise GanzooError(
                f"cannot open the hub lock {self.root / LOCK_FILE} for writing ({error.strerror}); "
                "everyone who pushes needs write access to the hub directory"
            ) from None
        with contextlib.suppress(OSError, AttributeError):  # no fchmod on Windows
            os.fchmod(fd, 0o664)  # group-writable despite the umask, so a team can share the hub
        with _THREAD_LOCK, os.fdopen(fd, "r+b") as f:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while not _try_lock(f):
                if time.monotonic() > deadline:
                    raise GanzooError(f"{self.root / LOCK_FILE} stayed locked for {LOCK_TIMEOUT_S:.0f} s by another push")
                time.sleep(0.05)
            try:
                yield
            finally:
                _unlock(f)

    # -- the backend interface ------------------------------------------------------------

    def publish(self, staged: Path, name: str, version: str | None) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        model_dir = self._model_dir(name)
        if not self._real_dir(model_dir, f"pushing {name!r}"):
            model_dir.mkdir(exist_ok=True)
            self._real_dir(model_dir, f"pushing {name!r}")
        tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=".push-"))
        try:
            for source in sorted(staged.iterdir()):
                _copy(source, tmp / source.name)
            files = file_entries(tmp)
            with self._lock():
                existing = self._versions(name)
                if version is None:
                    version = str(max((int(v) for v in existing if v.isdigit()), default=0) + 1)
                if version in existing or os.path.lexists(model_dir / version):
                    raise GanzooError(
                        f"{name}@{version} already exists in {self.uri}; pushed versions are immutable, push a new version"
                    )
                write_manifest(tmp, name, version, files)
                for path in tmp.iterdir():
                    path.chmod(0o444)
                tmp.chmod(0o755)
                fsync_dir(tmp)
                os.rename(tmp, model_dir / version)
                fsync_dir(model_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return version

    def resolve(self, name: str, version: str | None) -> str:
        if version is not None:
            self._version_dir(name, version)
            return version
        versions = self._versions(name)
        if not versions:
            known = ", ".join(sorted({m.name for m in self.models()})) or "(none)"
            raise GanzooError(f"model {name!r} not found in {self.uri}; models: {known}")
        return max(versions, key=lambda v: (self._created(name, v), _natural(v)))

    def fetch(self, name: str, snapshot: str, filename: str, dest: Path, size: int | None = None) -> None:
        source = self._version_dir(name, snapshot) / filename
        try:
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise CheckpointError(f"{name}@{snapshot}: {filename} is missing from {self.uri}") from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise CheckpointError(f"{source} is a symlink; refused (it could point outside the hub)") from None
            raise
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise CheckpointError(f"{source} is not a regular file; refused")
            limit = None if size is None else size + 1
            with open(dest, "xb") as out:
                copied = 0
                while limit is None or copied < limit:
                    block = src.read(COPY_BLOCK if limit is None else min(COPY_BLOCK, limit - copied))
                    if not block:
                        break
                    out.write(block)
                    copied += len(block)

    def models(self) -> list[ModelVersion]:
        if not self.root.is_dir():
            return []
        rows = []
        for model_dir in sorted(self.root.iterdir()):
            if model_dir.name.startswith(".") or model_dir.is_symlink() or not model_dir.is_dir():
                continue
            for version in self._versions(model_dir.name):
                rows.append(self._row(model_dir.name, version))
        return sorted(rows, key=lambda r: (r.name, r.created or "", _natural(r.version)))

    def _row(self, name: str, version: str) -> ModelVersion:
        try:
            manifest = json.loads((self.root / name / version / MANIFEST_FILE).read_bytes())
            files = manifest.get("files", {})
            size = sum(int(e.get("size", 0)) for e in files.values())
            return ModelVersion(name, version, manifest.get("created"), size, manifest.get("ganzoo_version"))
        except (OSError, ValueError, AttributeError, TypeError):
            return ModelVersion(name, version, None, 0, None)


def _natural(version: str) -> tuple[int, int, str]:
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


def _copy(source: Path, dest: Path) -> None:
    if not stat.S_ISREG(source.lstat().st_mode):
        raise CheckpointError(f"{source} is not a regular file; refusing to push it")
    shutil.copyfile(source, dest)
    with open(dest, "rb") as f:
        os.fsync(f.fileno())


try:
    import fcntl

    def _try_lock(f: object) -> bool:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
            return True
        except OSError:
            return False

    def _unlock(f: object) -> None:
        fcntl.lockf(f, fcntl.LOCK_UN)  # type: ignore[arg-type]

except ImportError:  # Windows
    import msvcrt

    def _try_lock(f: object) -> bool:
        f.seek(0)  # type: ignore[attr-defined]
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False

    def _unlock(f: object) -> None:
        f.seek(0)  # type: ignore[attr-defined]
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


__all__ = ["LocalDirHub"]
