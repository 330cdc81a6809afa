"""What of a DICOM's patient may leave the dataset: nothing but a salted hash of PatientID.

The hash groups a patient's images on one side of a split. Its salt is a random secret kept in
GANZOO_HOME (never in a run's outputs), so the hash of a short hospital ID cannot be reversed by
trying every ID; the same machine gives the same groups, so splits are reproducible there.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from ganzoo.api import DataError, atomic_write_bytes, ganzoo_home

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
