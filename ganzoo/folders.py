"""Labelled folders of files, the part every folder-based dataset plugin shares: labels from a
metadata.csv confined to the folder or from class subfolders, choosing one label, content
digests, the seeded file order, and repeating a cached load's report."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path, PurePath
from typing import Callable

import torch

from .console import logger
from .data import ImageSet
from .errors import DataError
from .paths import file_sha256

METADATA_FILE = "metadata.csv"


def read_metadata(root: Path) -> dict[str, str]:
    """`metadata.csv` as {relative file path: label}; it needs `file` and `label` columns.

    A name that is absolute or resolves outside `root` (through `..` or a symlink) is refused.
    """
    path, inside, table = root / METADATA_FILE, root.resolve(), {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"file", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"{path} lacks column(s) {', '.join(sorted(missing))}; it has: {', '.join(reader.fieldnames or []) or 'no header'}"
            )
        for row in reader:
            name = row.get("file")
            if not name:
                continue
            if PurePath(name).is_absolute() or PurePath(name).drive:
                raise DataError(f"{path} row {reader.line_num}: {name!r} is an absolute path; names are relative to {root}; refused")
            if not (root / name).resolve().is_relative_to(inside):
                raise DataError(f"{path} row {reader.line_num}: {name!r} resolves outside {inside}; refused")
            table[name] = row["label"]
    return table


def metadata_column(root: Path, column: str) -> dict[str, str]:
    """{file: value} of one metadata.csv column (e.g. a patient or original-image column, to group a split)."""
    path = root / METADATA_FILE
    if not path.is_file():
        raise DataError(f"--group-by {column} needs a {METADATA_FILE} in {root}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            raise DataError(f"{path} has no column {column!r}; it has: {', '.join(reader.fieldnames or [])}")
        return {row["file"]: row[column] for row in reader if row.get("file")}


def labelled_files(root: Path, candidates: Callable[[Path], list[Path]]) -> tuple[list[Path], list[str]]:
    """Files and their labels: from metadata.csv, else `candidates(root)` labelled by their class subfolder."""
    if (root / METADATA_FILE).exists():
        table = read_metadata(root)
        names = sorted(table)
        return [root / name for name in names], [table[name] for name in names]
    files = candidates(root)
    return files, [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else "" for f in files]


def select_label(root: Path, files: list[Path], labels: list[str], label: str | None, noun: str = "image") -> tuple[list[Path], list[str]]:
    """The files of `label`; without one, all of them, with one warning when they carry several
    labels (a GAN trained on covid and normal X-rays mixed generates neither class)."""
    if label is None:
        counts = Counter(lab for lab in labels if lab)
        if len(counts) > 1:
            listed = ", ".join(f"{lab}: {n}" for lab, n in sorted(counts.items()))
            logger.warning("%s holds %d classes (%s) and no --label was given: they are used mixed together; "
                           "pass --label %s to use one class", root, len(counts), listed, min(counts))
        return files, labels
    known = sorted(set(labels) - {""})
    if not known:
        raise DataError(f"--label {label!r} needs class subfolders or a metadata.csv in {root}")
    keep = [i for i, lab in enumerate(labels) if lab == label]
    if not keep:
        raise DataError(f"no {noun} in {root} has label {label!r}; labels there: {', '.join(known)}")
    return [files[i] for i in keep], [labels[i] for i in keep]


def file_digests(root: Path, files: list[Path]) -> dict[str, str]:
    """sha256 of each file by its name under `root` ("unreadable" where it cannot be read): the cache key's part."""
    digests = {}
    for f in files:
        try:
            digests[str(f.relative_to(root))] = file_sha256(f)
        except OSError:
            digests[str(f.relative_to(root))] = "unreadable"
    return digests


def file_order(count: int, seed: int, max_images: int | None) -> list[int]:
    """The order files are read in: sorted for the whole folder, a seeded permutation for a subset."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order) if max_images is None else order


def replay_skipped(cached: ImageSet, root: Path) -> None:
    """A cached load says again which files the first load skipped, and why."""
    cached.source = str(root)
    for name, reason in cached.skipped_files.items():
        logger.warning("skipping %s: %s", root / name, reason)
