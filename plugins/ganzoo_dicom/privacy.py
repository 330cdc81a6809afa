"""What of a DICOM's patient may leave the dataset: nothing but a salted hash of PatientID.

The hash groups a patient's images on one side of a split. Its salt is a random secret kept in
GANZOO_HOME (never in a run's outputs), so the hash of a short hospital ID cannot be reversed by
trying every ID; the same machine gives the same groups, so splits are reproducible there.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from pathlib import Path
from typing import Sequence

import numpy as np

from ganzoo.api import DataError, ImageSet, atomic_write_bytes, atomic_write_text, ganzoo_home

SALT_FILE = "dicom-patient-salt"


def salt() -> bytes:
    """This machine's secret salt (32 random bytes), created on first use."""
    path = Path(ganzoo_home()) / SALT_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) < 16:
        raise DataError(f"{path} is damaged (under 16 bytes); delete it to make a new salt (patient groups change)")
    return data


def salt_digest() -> str:
    """Names the salt in cache keys without revealing it."""
    return hashlib.sha256(b"ganzoo-salt-id" + salt()).hexdigest()[:16]


def patient_group(patient_id: str | None, key: bytes) -> str:
    """The salted hash of a PatientID ('' when the file has none)."""
    if not patient_id:
        return ""
    return hashlib.sha256(key + str(patient_id).encode("utf-8")).hexdigest()[:16]


def grouped_split(data: ImageSet, test_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, test) indices with every patient group on one side; images without a group are their own."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be in (0, 1), got {test_fraction}")
    groups: dict[str, list[int]] = {}
    for i in range(len(data)):
        key = data.groups[i] if data.groups and data.groups[i] else f"image:{i}"
        groups.setdefault(key, []).append(i)
    keys = sorted(groups)
    np.random.default_rng(seed).shuffle(keys)
    target, test = round(len(data) * test_fraction), []
    for key in keys:
        if len(test) >= target:
            break
        test += groups[key]
    chosen = set(test)
    return [i for i in range(len(data)) if i not in chosen], sorted(test)


def write_split(path: str | Path, data: ImageSet, train: Sequence[int], test: Sequence[int]) -> Path:
    """split.csv: file, label, group (the salted hash), split; no patient attribute."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "label", "group", "split"])
    side = {**{i: "train" for i in train}, **{i: "test" for i in test}}
    for i in sorted(side):
        writer.writerow([data.files[i] if data.files else i, data.labels[i] if data.labels else "", data.groups[i] if data.groups else "", side[i]])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, out.getvalue())
    return path
