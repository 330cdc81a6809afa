"""The `folder` dataset: PNG/JPEG files in a directory, flat or in class subfolders, or
listed with their labels in a `metadata.csv`.

Every name metadata.csv lists must stay inside the data folder (no `..`, no absolute
paths, no symlink out): a dataset someone hands over must not make ganzoo read, train on
and publish other files of the machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

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
    file_digests,
    file_order,
    labelled_files,
    list_image_files,
    load_cached,
    logger,
    preprocess,
    progress,
    reduce_to_uint8,
    replay_skipped,
    select_label,
    store_cached,
)


def load_folder(options: DatasetOptions) -> ImageSet:
    """A directory of PNG/JPEG files, flat or in class subfolders, optionally with metadata.csv."""
    if not options.path:
        raise DataError("dataset 'folder' needs a path: --data DIR")
    root = Path(options.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory not found: {root}")
    files, labels = select_label(root, *labelled_files(root, list_image_files), options.label)
    if not files:
        raise DataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    order = file_order(len(files), options.seed, options.max_images)
    digests = file_digests(root, files)
    key = cache_key({"files": digests, "order": order, "max": options.max_images, "prep": asdict(options.preprocessing)})
    cached = load_cached(key)
    if cached is not None:
        replay_skipped(cached, root)
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
