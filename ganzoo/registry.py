"""Named registries for datasets, architectures, losses and metrics (timm-style)."""

from __future__ import annotations

import fnmatch
import re
import warnings
from dataclasses import dataclass
from typing import Any, Generic, Iterable, Iterator, TypeVar

from .errors import GanzooError

T = TypeVar("T")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$|^[a-z0-9]$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object and the plugin that registered it."""

    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Maps lowercase-dash names to objects; remembers which plugin registered each."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, obj: T, plugin: str = "<unknown>") -> None:
        """Add `obj` under `name`; a duplicate warns, names both plugins, and the newer wins."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise GanzooError(
                f"invalid {self.kind} name {name!r} from plugin {plugin!r}: "
                "use lowercase letters, digits and dashes (e.g. 'wgan-gp')"
            )
        if name in self._entries:
            previous = self._entries[name].plugin
            warnings.warn(
                f"{self.kind} {name!r} registered by plugin {plugin!r} replaces the one "
                f"registered by plugin {previous!r}",
                stacklevel=2,
            )
        self._entries[name] = Entry(name, obj, plugin)

    def get(self, name: str) -> T:
        """The object registered as `name`; an unknown name lists the known ones."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.list()) or "(none)"
            raise GanzooError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def list(self, filter: str | Iterable[str] = "*", exclude: str | Iterable[str] = ()) -> list[str]:
        """Sorted names matching any glob in `filter` and none in `exclude`."""
        include = [filter] if isinstance(filter, str) else list(filter)
        excluded = [exclude] if isinstance(exclude, str) else list(exclude)
        return sorted(
            name
            for name in self._entries
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in include)
            and not any(fnmatch.fnmatchcase(name, pattern) for pattern in excluded)
        )

    def entries(self) -> Iterator[Entry[T]]:
        return (self._entries[name] for name in sorted(self._entries))

    def unregister_plugin(self, plugin: str) -> None:
        """Drop everything a plugin registered (used when its hook fails half-way)."""
        self._entries = {k: e for k, e in self._entries.items() if e.plugin != plugin}

    def clear(self) -> None:
        self._entries.clear()

    def __contains__(self, name: Any) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
