"""Labelled images for the classifier and the rebalanced copies: records, synthetic marks, splits.

A record knows whether a GAN made it (a `synthetic` column, or an augment manifest), so a
synthetic file can never reach a test split; the split itself is drawn from real images only.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ganzoo.api import IMAGE_EXTENSIONS, GanzooError, list_image_files, read_split

PATIENT_COLUMNS = ("patient", "patient_id", "patientid", "patient id", "subject", "subject_id")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Record:
    """One image: where it is, its class, its patient (if known), and whether a GAN made it."""

    path: Path
    label: str
    group: str | None = None
    synthetic: bool = False


def _truthy(text: str | None) -> bool:
    return str(text or "").strip().lower() in ("1", "true", "yes", "y")


def read_records(data: str | Path, label_column: str = "label") -> tuple[list[Record], str | None]:
    """The labelled images of a folder (metadata.csv, else class subfolders) and the patient column used.

    Files marked synthetic (a `synthetic` column, or an augment manifest) are flagged, so they
    can never reach a test split.
    """
    root = Path(data).expanduser()
    if not root.is_dir():
        raise GanzooError(f"data directory not found: {root}")
    marked = synthetic_files(root)
    meta = root / "metadata.csv"
    if not meta.exists():
        if label_column != "label":
            raise GanzooError(f"--label-column {label_column} needs a metadata.csv in {root}")
        records = [Record(f, f.relative_to(root).parts[0], None, f.resolve() in marked) for f in list_image_files(root) if len(f.relative_to(root).parts) > 1]
        return records, None
    with open(meta, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in ("file", label_column) if c not in columns]
        if missing:
            raise GanzooError(f"{meta} lacks column(s) {', '.join(missing)}; it has: {', '.join(columns) or 'no header'}")
        patient = next((c for c in columns if c.strip().lower() in PATIENT_COLUMNS), None)
        records = []
        for row in reader:
            if not row.get("file"):
                continue
            path = root / row["file"]
            flagged = _truthy(row.get("synthetic")) or path.resolve() in marked or (path.resolve(strict=False) in marked)
            records.append(Record(path, row[label_column], (row.get(patient) or None) if patient else None, flagged))
    return records, patient


def synthetic_files(root: Path) -> set[Path]:
    """Files an augment manifest in `root` marks as synthetic (resolved paths)."""
    manifest = root / MANIFEST
    if not manifest.exists():
        return set()
    entries = json.loads(manifest.read_text())["files"]
    return {(root / e["file"]).resolve() for e in entries if e["synthetic"]}


def synthetic_images(directory: str | Path, positive: str) -> list[Path]:
    """Synthetic images to add: an augment output's synthetic files of class `positive`, or every image in a folder."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise GanzooError(f"synthetic image directory not found: {root}")
    if (root / MANIFEST).exists():
        entries = json.loads((root / MANIFEST).read_text())["files"]
        files = [root / e["file"] for e in entries if e["synthetic"] and e["label"] == positive]
    else:
        files = list_image_files(root)
    if not files:
        raise GanzooError(f"no synthetic {positive!r} images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    return files


def split(records: Sequence[Record], positive: str, test_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int], str]:
    """Indices of (train, test, how): test holds real images only, grouped by patient when known.

    Without patients the split is stratified by class; with them, whole patients go to the
    test side (in a seeded order, per class of their first image) until each class has its share.
    """
    if not 0 < test_fraction < 1:
        raise GanzooError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    real = [i for i, r in enumerate(records) if not r.synthetic]
    by_patient = any(records[i].group for i in real)
    test: list[int] = []
    for cls in (True, False):
        members = [i for i in real if (records[i].label == positive) == cls]
        if by_patient:
            groups: dict[str, list[int]] = {}
            for i in real:
                groups.setdefault(records[i].group or f"file:{records[i].path}", []).append(i)
            keys = sorted(k for k, idx in groups.items() if (records[idx[0]].label == positive) == cls)
            rng.shuffle(keys)
            target, taken = round(len(members) * test_fraction), 0
            for key in keys:
                if taken >= target:
                    break
                test += groups[key]
                taken += len(groups[key])
        else:
            order = list(rng.permutation(members))
            test += [int(i) for i in order[: round(len(members) * test_fraction)]]
    test_set = set(test)
    train = [i for i in range(len(records)) if i not in test_set]
    if any(records[i].synthetic for i in test):
        raise GanzooError("internal error: a synthetic image reached the test split")
    return sorted(train), sorted(test), "patient" if by_patient else "stratified"


def split_from_file(records: Sequence[Record], root: str | Path, split_file: Path) -> tuple[list[int], list[int], str]:
    """Indices of (train, test, how) from a `ganzoo split` file: its held-out part is the test split,
    so a GAN trained on the same file's train part never saw a test image."""
    sides = read_split(split_file)
    root = Path(root).expanduser()
    real = [i for i, r in enumerate(records) if not r.synthetic]
    names = {i: records[i].path.relative_to(root).as_posix() for i in real}
    missing = [name for name in names.values() if name not in sides]
    if missing:
        raise GanzooError(
            f"{len(missing)} image(s) of {root} are not in {split_file} (e.g. {missing[0]}): the data changed since the "
            "split was drawn; draw a new one with: ganzoo split DATA, or pass --split none"
        )
    test = [i for i in real if sides[names[i]] == "holdout"]
    train = [i for i in real if sides[names[i]] == "train"]
    return train, test, f"split file {split_file}"


def stratified_subset(records: list[Record], positive: str, n: int, seed: int) -> list[Record]:
    """A seeded, class-stratified subset of n real images."""
    rng = np.random.default_rng(seed + 1)
    real = [r for r in records if not r.synthetic]
    pos = [r for r in real if r.label == positive]
    neg = [r for r in real if r.label != positive]
    k = max(1, round(n * len(pos) / max(1, len(real))))
    pick = [pos[i] for i in rng.permutation(len(pos))[:k]] + [neg[i] for i in rng.permutation(len(neg))[: max(1, n - k)]]
    return sorted(pick, key=lambda r: str(r.path))
