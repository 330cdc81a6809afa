"""Drawing a dataset's held-out split once (`ganzoo split DATA`): load every image, draw, write."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from .config import default_dataset
from .console import logger
from .data import DatasetOptions, ImageSet, Preprocessing, load_dataset
from .errors import DataError
from .folders import metadata_column
from .splits import SPLIT_FILE, draw_split, write_split


class ReadingEveryLabel(logging.Filter):
    """A split reads every label on purpose: the warning about classes used mixed together is for training."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "used mixed together" not in record.getMessage()


def make_split(
    data: str | None, dataset: str | None = None, holdout: float = 0.2, seed: int = 0,
    group_by: str | None = None, out: str | Path | None = None, overwrite: bool = False,
) -> tuple[Path, ImageSet, list[str]]:
    """Draw and write the split of every image in `data` (all labels): (file, images, sides).

    Stratified by label; with `group_by` a metadata.csv column keeps each of its values on one
    side, and a dataset that groups its own images (DICOM: a salted PatientID hash) is grouped
    by them without it.
    """
    name = default_dataset(dataset, data)
    quiet = ReadingEveryLabel()
    logger.addFilter(quiet)
    try:
        images = load_dataset(name, DatasetOptions(path=data, preprocessing=Preprocessing(resolution=16, clahe=False), part="all", split="none"))
    finally:
        logger.removeFilter(quiet)
    if any(images.splits):
        raise DataError(f"{data} has an official split of its own ({', '.join(sorted(set(images.splits)))}); its test part is the held-out part, no ganzoo split needed")
    if out is None:
        if not data or not Path(data).expanduser().is_dir():
            raise DataError(f"give --out FILE for the split of {data or name} (it is not a folder to write {SPLIT_FILE} into)")
        out = Path(data).expanduser() / SPLIT_FILE
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists: models trained on its train part would be scored on images they saw if it changed; pass --overwrite to draw a new split")
    groups = list(images.groups)
    if group_by:
        column = metadata_column(Path(images.source or data or ""), group_by)
        groups = [column.get(f, "") for f in images.files]
    sides = draw_split(images.labels or [""] * len(images), groups, holdout, seed)
    write_split(out, images, sides, holdout, seed, group_by or ("dataset groups" if any(images.groups) else None))
    return out, images, sides


def describe_sides(images: ImageSet, sides: list[str]) -> str:
    """'N of M images held out (covid: a train / b held out, ...)'."""
    counts = Counter(zip(images.labels or [""] * len(sides), sides))
    labels = sorted({label for label, _ in counts})
    per_label = ", ".join(f"{label or 'unlabelled'}: {counts[label, 'train']} train / {counts[label, 'holdout']} held out" for label in labels)
    return f"{sides.count('holdout')} of {len(sides)} images held out ({per_label})"
