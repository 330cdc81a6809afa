"""The `dicom` dataset: single-frame grayscale DICOM files in a folder, labelled by a
`metadata.csv` (file, label) or by class subfolders.

Each file goes through `pixels.read_dicom` (Modality LUT, VOI, MONOCHROME1) to 16 bits, then
the study's preprocessing at 16 bits, and only then to the model's uint8. Of the patient only
a salted hash of PatientID is kept (`ImageSet.groups`); files that cannot be used are skipped
with the reason, as the `folder` dataset does for bad PNGs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ganzoo.api import (
    DataError,
    DatasetOptions,
    ImageSet,
    UnreadableImage,
    cache_key,
    file_digests,
    file_order,
    labelled_files,
    load_cached,
    logger,
    preprocess,
    progress,
    reduce_to_uint8,
    replay_skipped,
    select_label,
    store_cached,
)

from .pixels import decoder_plugins, parse_window, read_dicom
from .privacy import patient_group, salt, salt_digest

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", "")  # hospital exports often have no extension


def is_dicom_name(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in DICOM_SUFFIXES and not path.name.startswith(".")


def dicom_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if is_dicom_name(p))


def load_dicom(options: DatasetOptions) -> ImageSet:
    """A folder of DICOM files (see the module docstring)."""
    if not options.path:
        raise DataError("dataset 'dicom' needs a path: --data DIR")
    root = Path(options.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory not found: {root}")
    window = parse_window(options.window)
    files, labels = select_label(root, *labelled_files(root, dicom_files), options.label, noun="DICOM file")
    if not files:
        raise DataError(f"no DICOM files (.dcm, .dicom, .dic or no extension) in {root}")
    order = file_order(len(files), options.seed, options.max_images)
    digests = file_digests(root, files)
    key = cache_key({"dicom": digests, "order": order, "max": options.max_images, "prep": asdict(options.preprocessing), "window": window, "salt": salt_digest(), "decoders": decoder_plugins()})
    cached = load_cached(key)
    if cached is not None:
        replay_skipped(cached, root)
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
