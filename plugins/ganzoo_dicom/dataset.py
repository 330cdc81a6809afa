"""The `dicom` dataset: single-frame grayscale DICOM files in a folder, labelled by a
`metadata.csv` (file, label) or by class subfolders.

Each file goes through `pixels.read_dicom` (Modality LUT, VOI, MONOCHROME1) to 16 bits, then
the study's preprocessing at 16 bits, and only then to the model's uint8. Of the patient only
a salted hash of PatientID is kept (`ImageSet.groups`); files that cannot be used are skipped
with the reason, as the `folder` dataset does for bad PNGs.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict
from pathlib import Path, PurePath

import numpy as np
import torch

from ganzoo.api import (
    DataError,
    DatasetOptions,
    ImageSet,
    UnreadableImage,
    cache_key,
    file_sha256,
    load_cached,
    logger,
    preprocess,
    progress,
    reduce_to_uint8,
    store_cached,
)

from .pixels import parse_window, read_dicom
from .privacy import patient_group, salt, salt_digest

METADATA_FILE = "metadata.csv"
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", "")  # hospital exports often have no extension


def is_dicom_name(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in DICOM_SUFFIXES and not path.name.startswith(".")


def read_metadata(root: Path) -> dict[str, str]:
    """metadata.csv as {relative name: label}; a name outside `root` (absolute, `..`, symlink) is refused."""
    path, inside, table = root / METADATA_FILE, root.resolve(), {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"file", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path} lacks column(s) {', '.join(sorted(missing))}; it has: {', '.join(reader.fieldnames or []) or 'no header'}")
        for row in reader:
            name = row.get("file")
            if not name:
                continue
            if PurePath(name).is_absolute() or not (root / name).resolve().is_relative_to(inside):
                raise DataError(f"{path} row {reader.line_num}: {name!r} is outside {inside}; refused")
            table[name] = row["label"]
    return table


def labelled_files(root: Path) -> tuple[list[Path], list[str]]:
    if (root / METADATA_FILE).exists():
        table = read_metadata(root)
        return [root / n for n in sorted(table)], [table[n] for n in sorted(table)]
    files = sorted(p for p in root.rglob("*") if is_dicom_name(p))
    return files, [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else "" for f in files]


def load_dicom(options: DatasetOptions) -> ImageSet:
    """A folder of DICOM files (see the module docstring)."""
    if not options.path:
        raise DataError("dataset 'dicom' needs a path: --data DIR")
    root = Path(options.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory not found: {root}")
    window = parse_window(options.window)
    files, labels = labelled_files(root)
    if options.label is not None:
        known = sorted(set(labels) - {""})
        if not known:
            raise DataError(f"--label {options.label!r} needs class subfolders or a metadata.csv in {root}")
        keep = [i for i, lab in enumerate(labels) if lab == options.label]
        if not keep:
            raise DataError(f"no DICOM file in {root} has label {options.label!r}; labels there: {', '.join(known)}")
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    if not files:
        raise DataError(f"no DICOM files (.dcm, .dicom, .dic or no extension) in {root}")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(options.seed)).tolist()
    if options.max_images is None:
        order.sort()
    digests = {}
    for f in files:
        try:
            digests[str(f.relative_to(root))] = file_sha256(f)
        except OSError:
            digests[str(f.relative_to(root))] = "unreadable"
    key = cache_key({"dicom": digests, "order": order, "max": options.max_images, "prep": asdict(options.preprocessing), "window": window, "salt": salt_digest()})
    cached = load_cached(key)
    if cached is not None:
        cached.source = str(root)
        for name, reason in cached.skipped_files.items():
            logger.warning("skipping %s: %s", root / name, reason)
        logger.info("loaded %d DICOM images of %s from the dataset cache (key %s)", len(cached), root, key)
        return cached
    data = decode_all(root, files, labels, order, digests, options, window)
    store_cached(key, data, options.preprocessing)
    logger.info("decoded %d DICOM images of %s into the dataset cache (key %s)", len(data), root, key)
    return data


def decode_all(root: Path, files: list[Path], labels: list[str], order: list[int], digests: dict[str, str], options: DatasetOptions, window: object) -> ImageSet:
    images, kept, kept_labels, groups, skipped = [], [], [], [], {}
    key, target = salt(), options.max_images or len(files)
    with progress() as bar:
        task = bar.add_task(f"decoding {root.name}", total=target)
        for i in order:
            if len(images) >= target:
                break
            name = str(files[i].relative_to(root))
            try:
                image, ds = read_dicom(files[i], window)  # type: ignore[arg-type]
            except UnreadableImage as problem:
                skipped[name] = str(problem)
                logger.warning("skipping %s: %s", files[i], problem)
                continue
            images.append(reduce_to_uint8(preprocess(image, options.preprocessing)))
            kept.append(name)
            kept_labels.append(labels[i])
            groups.append(patient_group(ds.get("PatientID"), key))
            bar.advance(task)
    if not images:
        raise DataError(f"no usable DICOM image in {root} ({len(skipped)} file(s) skipped, reasons above)")
    if skipped:
        logger.warning("skipped %d unusable DICOM file(s) in %s", len(skipped), root)
    fingerprint = hashlib.sha256(json.dumps({f: digests[f] for f in kept}, sort_keys=True).encode()).hexdigest()[:16]
    return ImageSet(
        name="dicom", images=torch.from_numpy(np.stack(images)).unsqueeze(1), fingerprint=fingerprint,
        files=kept, labels=kept_labels, skipped=len(skipped), skipped_files=skipped, source=str(root), groups=groups,
    )
