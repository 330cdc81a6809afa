"""Radiomic features of real image sets, kept so that scoring many checkpoints extracts them once.

pyradiomics takes about a quarter of a second per 64x64 image on one core, so the real set's
features go into ganzoo's `features` cache (`radiomics-<key>.safetensors`, keyed by the exact
pixels and the feature identity) like the Inception features do. The last sets' features are
also remembered per image in memory: the real-vs-real baseline splits the real set, and
`--eval-every` scores against the same images again and again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ganzoo.api import ImageSet, logger, open_cache_entry, remove_cache_entry, write_cache_entry

CACHE = "features"
MEMORY_ROWS = 20_000  # ~64 MB of float64 rows; a larger real set replaces what is remembered

_ROWS: dict[str, Any] = {"identity": None, "names": None, "index": {}, "features": []}


def row_digests(images: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def remember(images: np.ndarray, features: np.ndarray, names: list[str], identity: str) -> None:
    """Keep these images' feature rows by pixel digest (a bounded number, for this identity only)."""
    if _ROWS["identity"] != identity or _ROWS["names"] != names or len(_ROWS["index"]) + len(images) > MEMORY_ROWS:
        _ROWS.update(identity=identity, names=list(names), index={}, features=[])
    index, stored = _ROWS["index"], _ROWS["features"]
    for digest, row in zip(row_digests(images), features):
        if digest not in index:
            index[digest] = len(stored)
            stored.append(row)


def recall(images: np.ndarray, identity: str) -> tuple[np.ndarray, list[str]] | None:
    """The remembered features of every one of these images, or None when any is unknown."""
    if _ROWS["identity"] != identity or not len(images):
        return None
    rows = [_ROWS["index"].get(d) for d in row_digests(images)]
    if any(r is None for r in rows):
        return None
    return np.stack([_ROWS["features"][r] for r in rows]), list(_ROWS["names"])


def forget() -> None:
    """Drop the remembered rows (tests, or to free memory)."""
    _ROWS.update(identity=None, names=None, index={}, features=[])


def real_key(images: np.ndarray, identity: str) -> str:
    pixels = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    parts = {"shape": list(images.shape), "pixels": pixels, "features": identity}
    return f"radiomics-{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]}.safetensors"


def load(key: str, n: int, identity: str) -> tuple[np.ndarray, list[str]] | None:
    """A cached entry's (features, names); a damaged or mismatched one is removed, never trusted."""
    from safetensors import safe_open

    with open_cache_entry(CACHE, key) as entry:
        if entry is None:
            return None
        try:
            with safe_open(str(entry.path), framework="numpy") as f:
                metadata = f.metadata() or {}
                features = f.get_tensor("features")
            names = json.loads(metadata.get("names", "null"))
            if metadata.get("identity") != identity or features.shape != (n, len(names)) or features.dtype != np.float64:
                raise ValueError(f"shape {features.shape}, {len(names)} names, identity {metadata.get('identity')}")
            return features, names
        except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, it is recomputed
            logger.warning("ignoring damaged radiomics cache %s (%s)", entry.path, error)
    remove_cache_entry(CACHE, key, even_in_use=True)
    return None


def store(key: str, real: ImageSet, features: np.ndarray, names: list[str], identity: str) -> None:
    from safetensors.numpy import save

    metadata = {"identity": identity, "names": json.dumps(names), "fingerprint": str(real.fingerprint)}
    what = f"{real.source or real.name} ({len(real)} images, fingerprint {real.fingerprint}): radiomic features {features.shape}"
    details = {"source": real.source, "name": real.name, "fingerprint": real.fingerprint, "images": len(real), "features": identity}
    with write_cache_entry(CACHE, key, what, details) as tmp:
        tmp.write_bytes(save({"features": np.ascontiguousarray(features, dtype=np.float64)}, metadata=metadata))

