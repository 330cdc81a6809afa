"""Model locations: `hub:NAME[@VERSION]`, `local-dir:HUB/NAME`, `hf-hub:ORG/NAME`, or a path.

This module parses locations and names and finds the hub backend of a scheme; the hub
backend contract (`HubBackend`) lives here too, so backends depend on nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .errors import GanzooError
from .paths import ganzoo_home
from .plugins import registry

DEFAULT_SCHEME = "hub"
# A scheme is two or more lowercase characters, so a Windows drive letter is never one.
SCHEME_PATTERN = re.compile(r"^([a-z0-9][a-z0-9-]*[a-z0-9]):(.*)$", re.DOTALL)
SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelRef:
    """Where a pushed model now lives; `location` is what `ganzoo.load` accepts."""

    hub: str
    name: str
    version: str
    location: str


@dataclass(frozen=True)
class ModelVersion:
    """One row of `ganzoo hub list`."""

    name: str
    version: str
    created: str | None
    size: int
    ganzoo_version: str | None


class HubBackend:
    """What a hub plugin registers with `register(scheme, cls)`: it moves bytes, never trusts them.

    `cls(address)` is the hub of the URI `scheme:address`; `cls.from_location(address)`
    splits a model location `scheme:address` into that hub and `NAME[@VERSION]`.
    """

    scheme: ClassVar[str] = ""
    #: True when a version is an immutable directory whose manifest must repeat its name and version.
    pins_versions: ClassVar[bool] = True
    #: How many `/`-separated segments a model name may have (2 allows `org/name`).
    name_segments: ClassVar[int] = 1

    def __init__(self, address: str) -> None:
        self.address = address

    @classmethod
    def from_location(cls, address: str) -> tuple[HubBackend, str]:
        raise GanzooError(f"{cls.scheme}: names a hub, not a model; use `hub:NAME` with --hub {cls.scheme}:...")

    @property
    def uri(self) -> str:
        return f"{self.scheme}:{self.address}"

    def cache_key(self) -> str:
        """A directory name for this hub's pulls: which hub a cached model came from."""
        return f"{self.scheme}-{hashlib.sha256(self.uri.encode()).hexdigest()[:16]}"

    def location(self, ref: str) -> str:
        """The model location of `NAME[@VERSION]` on this hub."""
        raise NotImplementedError

    def publish(self, staged: Path, name: str, version: str | None) -> str:
        """Publish the files in `staged` as an immutable version; write its manifest; return the version."""
        raise NotImplementedError

    def resolve(self, name: str, version: str | None) -> str:
        """The immutable snapshot id of `version` (the latest when None); it keys the local cache."""
        raise NotImplementedError

    def fetch(self, name: str, snapshot: str, filename: str, dest: Path, size: int | None = None) -> None:
        """Copy one file of a snapshot to `dest` (a file that does not exist yet); never interpret it."""
        raise NotImplementedError

    def models(self) -> list[ModelVersion]:
        """Every version of every model on this hub."""
        raise GanzooError(f"the {self.scheme} hub cannot list its models")


# -- names and locations ----------------------------------------------------------------


def validate_name(name: str, segments: int = 1) -> str:
    """Refuse anything that could leave a hub directory: `..`, absolute paths, odd characters."""
    parts = name.split("/") if isinstance(name, str) else [None]
    if not (1 <= len(parts) <= segments) or not all(isinstance(p, str) and SEGMENT_PATTERN.match(p) for p in parts):
        shape = "NAME or ORG/NAME" if segments > 1 else "NAME"
        raise GanzooError(
            f"invalid model name {name!r}: use {shape} made of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no '..', no absolute paths)"
        )
    return name


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise GanzooError(
            f"invalid version {version!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return version


def split_ref(ref: str) -> tuple[str, str | None]:
    """`NAME@VERSION` -> (NAME, VERSION); `NAME` -> (NAME, None)."""
    name, sep, version = ref.partition("@")
    return name, (validate_version(version) if sep else None)


def default_hub() -> str:
    """`$GANZOO_HUB`, else the directory `$GANZOO_HOME/hub`: the hub `hub:NAME` means."""
    return os.environ.get("GANZOO_HUB") or f"local-dir:{ganzoo_home() / 'hub'}"


def _backend_class(scheme: str) -> type[HubBackend]:
    hubs = registry("hubs")
    if scheme not in hubs:
        known = ", ".join([DEFAULT_SCHEME, *hubs.list()])
        raise GanzooError(f"unknown hub scheme {scheme!r}; known: {known}")
    return hubs.get(scheme)


def get_hub(uri: str | None = None) -> HubBackend:
    """The backend for a hub URI like `local-dir:/shared/hub` or `hf-hub`; None is the default hub."""
    uri = uri or default_hub()
    match = SCHEME_PATTERN.match(uri) or SCHEME_PATTERN.match(uri + ":")
    if match is None or match.group(1) == DEFAULT_SCHEME:
        raise GanzooError(f"hub {uri!r} is not a hub URI; write local-dir:/path/to/hub, hf-hub or hf-hub:https://host")
    return _backend_class(match.group(1))(match.group(2))


def target(location: str, hub: str | None) -> tuple[HubBackend, str, str | None]:
    """Split a model location (or a bare `NAME[@VERSION]` on `hub`) into backend, name, version."""
    match = SCHEME_PATTERN.match(location)
    if match is None or match.group(1) == DEFAULT_SCHEME:
        backend, ref = get_hub(hub), (match.group(2) if match else location)
    else:
        if hub is not None:
            raise GanzooError(f"{location!r} already names its hub; drop --hub {hub}")
        backend, ref = _backend_class(match.group(1)).from_location(match.group(2))
    name, version = split_ref(ref)
    return backend, validate_name(name, backend.name_segments), version


def location_of(backend: HubBackend, ref: str) -> str:
    """`hub:REF` on the default hub, else the backend's own spelling of the location."""
    try:
        is_default = backend.uri == get_hub().uri
    except GanzooError:
        is_default = False
    return f"{DEFAULT_SCHEME}:{ref}" if is_default else backend.location(ref)


def is_location(location: str | Path) -> bool:
    """True for `scheme:...` strings; a Path is always a path (write `./a:b` for a folder named `a:b`)."""
    return isinstance(location, str) and SCHEME_PATTERN.match(location) is not None
