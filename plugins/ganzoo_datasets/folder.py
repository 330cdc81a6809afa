"""The `folder` dataset: PNG/JPEG files in a directory, flat or in class subfolders, or
listed with their labels in a `metadata.csv`.

Every name metadata.csv lists must stay inside the data folder (no `..`, no absolute
paths, no symlink out): a dataset someone hands over must not make ganzoo read, train on
and publish other files of the machine.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path, PurePath

import numpy as np
import torch

from ganzoo.api import (
    IMAGE_EXTENSIONS,
    DataError,
    DatasetOptions,
    ImageSet,
    UnreadableImage,
    cache_key,
    decode_grayscale,
    file_sha256,
    list_image_files,
    load_cached,
    logger,
    preprocess,
    progress,
    reduce_to_uint8,
    store_cached,
)

METADATA_FILE = "metadata.csv"


def read_metadata(root: Path) -> dict[str, str]:
    """`metadata.csv` as {relative file path: label}; it needs `file` and `label` columns.

    A name that is absolute or resolves outside `root` (through `..` or a symlink) is refused.
    """
    path = root / METADATA_FILE
    inside = root.resolve()
    table = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"file", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"{path} lacks column(s) {', '.join(sorted(missing))}; "
                f"it has: {', '.join(reader.fieldnames or []) or 'no header'}"
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


def labelled_files(root: Path) -> tuple[list[Path], list[str]]:
    """Image files and their labels: from metadata.csv, else from class subfolders."""
    if (root / METADATA_FILE).exists():
        table = read_metadata(root)
        names = sorted(table)
        return [root / name for name in names], [table[name] for name in names]
    files = list_image_files(root)
    labels = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else "" for f in files]
    return files, labels


def warn_if_mixed(root: Path, labels: list[str]) -> None:
    """One warning when no --label was given but the files carry several: a GAN trained on
    covid and normal X-rays mixed generates neither class."""
    counts = Counter(label for label in labels if label)
    if len(counts) > 1:
        listed = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items()))
        logger.warning("%s holds %d classes (%s) and no --label was given: they are used mixed together; "
                       "pass --label %s to use one class", root, len(counts), listed, min(counts))


def load_folder(options: DatasetOptions) -> ImageSet:
    """A directory of PNG/JPEG files, flat or in class subfolders, optionally with metadata.csv."""
    if not options.path:
        raise DataError("dataset 'folder' needs a path: --data DIR")
    root = Path(options.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory not found: {root}")
    files, labels = labelled_files(root)
    if options.label is not None:
        known = sorted(set(labels) - {""})
        if not known:
            raise DataError(f"--label {options.label!r} needs class subfolders or a metadata.csv in {root}")
        keep = [i for i, lab in enumerate(labels) if lab == options.label]
        if not keep:
            raise DataError(f"no image in {root} has label {options.label!r}; labels there: {', '.join(known)}")
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    else:
        warn_if_mixed(root, labels)
    if not files:
        raise DataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(options.seed)).tolist()
    if options.max_images is None:
        order.sort()

    digests = {}
    for f in files:
        try:
            digests[str(f.relative_to(root))] = file_sha256(f)
        except OSError:
            digests[str(f.relative_to(root))] = "unreadable"
    key = cache_key({"files": digests, "order": order, "max": options.max_images, "prep": asdict(options.preprocessing)})
    cached = load_cached(key)
    if cached is not None:
        cached.source = str(root)
        for name, reason in cached.skipped_files.items():
            logger.warning("skipping %s: %s", root / name, reason)
        report(cached, root, options)
        logger.info(
            "loaded %d images of %s from the dataset cache (key %s%s)", len(cached), root, key,
            f"; {cached.skipped} file(s) skipped, listed above" if cached.skipped else "",
        )
        return cached

    images, kept_files, kept_labels, skipped = [], [], [], {}
    target = options.max_images or len(files)
    with progress() as bar:
        task = bar.add_task(f"decoding {root.name}", total=target)
        for i in order:
            if len(images) >= target:
                break
            try:
                gray = decode_grayscale(files[i], keep_depth=True)
            except UnreadableImage as problem:
                skipped[str(files[i].relative_to(root))] = str(problem)
                logger.warning("skipping %s: %s", files[i], problem)
                continue
            images.append(reduce_to_uint8(preprocess(gray, options.preprocessing)))
            kept_files.append(str(files[i].relative_to(root)))
            kept_labels.append(labels[i])
            bar.advance(task)
    if not images:
        raise DataError(f"no usable image in {root} ({len(skipped)} file(s) could not be decoded)")
    fingerprint = hashlib.sha256(
        json.dumps({f: digests[f] for f in kept_files}, sort_keys=True).encode()
    ).hexdigest()[:16]
    data = ImageSet(
        name="folder",
        images=torch.from_numpy(np.stack(images)).unsqueeze(1),
        fingerprint=fingerprint,
        files=kept_files,
        labels=kept_labels,
        skipped=len(skipped),
        skipped_files=skipped,
        source=str(root),
    )
    report(data, root, options)
    store_cached(key, data, options.preprocessing)
    logger.info("decoded %d images of %s into the dataset cache (key %s)", len(data), root, key)
    return data


def report(data: ImageSet, root: Path, options: DatasetOptions) -> None:
    """What a load says after the per-file lines, the same whether decoded now or taken from the cache."""
    if data.skipped:
        logger.warning("skipped %d unreadable file(s) in %s", data.skipped, root)
    if options.max_images is not None and len(data) < options.max_images:
        logger.warning("--images %d asked, but %s has only %d usable image(s)", options.max_images, root, len(data))
