"""Held-out splits: which real images a model may train on, and which only ever score it.

`ganzoo split DATA` draws the split once (seeded, stratified by label, whole groups such as a
patient or an original image on one side) and writes it as `DATA/ganzoo-split.json` (or
anywhere with `--out`). A dataset loaded with `part="train"` then holds the training images
only, `part="holdout"` the held-out ones; a dataset with an official split of its own
(MedMNIST's `test`) needs no split file. The file names images, labels and sides only: no
group value, so no patient identifier, is written.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .console import logger
from .errors import DataError
from .imageset import ImageSet
from .paths import atomic_write_text, file_sha256
from .version import __version__

SPLIT_FILE = "ganzoo-split.json"
SPLIT_FORMAT = "ganzoo-split/1"
PARTS = ("all", "train", "holdout")
NO_SPLIT = "none"
HOLDOUT_SIDES = frozenset({"holdout", "test"})  # a dataset's own "test" part counts as held out
TRAIN_SIDES = frozenset({"train"})


class NoHoldout(DataError):
    """The data has no held-out part (no split file, no split of its own)."""


def draw_split(labels: Sequence[str], groups: Sequence[str], holdout: float, seed: int) -> list[str]:
    """"train" or "holdout" per image: about `holdout` of each label held out, whole groups at a time.

    An image without a group is a group of its own. A group goes with its most common label.
    Each label keeps at least one training and, when it has two groups or more, one held-out group.
    """
    if not 0 < holdout < 1:
        raise DataError(f"--holdout must be a fraction in (0, 1), got {holdout}")
    members: dict[str, list[int]] = defaultdict(list)
    for i in range(len(labels)):
        members[groups[i] if i < len(groups) and groups[i] else f"\0image:{i}"].append(i)
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, indices in members.items():
        by_label[Counter(labels[i] for i in indices).most_common(1)[0][0]].append(key)
    rng = np.random.default_rng(seed)
    sides = ["train"] * len(labels)
    for label in sorted(by_label):
        keys = sorted(by_label[label])
        rng.shuffle(keys)
        total = sum(len(members[k]) for k in keys)
        target, taken = round(total * holdout), 0
        for position, key in enumerate(keys):
            if position == len(keys) - 1 or (taken >= target and position > 0):
                break
            for i in members[key]:
                sides[i] = "holdout"
            taken += len(members[key])
    return sides


def write_split(path: str | Path, data: ImageSet, sides: Sequence[str], holdout: float, seed: int, group_by: str | None) -> Path:
    """The split file: how it was drawn, counts per label and side, and each file's side."""
    if not data.files or len(data.files) != len(sides):
        raise DataError(f"dataset {data.name!r} does not name its images, so a split file cannot refer to them")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"train": 0, "holdout": 0})
    for label, side in zip(data.labels or [""] * len(sides), sides):
        counts[label][side] += 1
    record = {
        "format": SPLIT_FORMAT, "ganzoo": __version__, "dataset": data.name, "fingerprint": data.fingerprint,
        "holdout": holdout, "seed": seed, "group_by": group_by, "counts": dict(sorted(counts.items())),
        "files": dict(sorted(zip(data.files, sides))),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def read_split(path: str | Path) -> dict[str, str]:
    """{file: side} from a split file; a file that is not one is refused with its reason."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read the split file {path}: {error}") from None
    if not isinstance(record, dict) or record.get("format") != SPLIT_FORMAT or not isinstance(record.get("files"), dict):
        raise DataError(f"{path} is not a ganzoo split file (format {SPLIT_FORMAT}); make one with: ganzoo split DATA")
    files = record["files"]
    bad = sorted({side for side in files.values() if side not in ("train", "holdout")})
    if bad:
        raise DataError(f"{path}: unknown side(s) {', '.join(map(str, bad))}; sides are train and holdout")
    return files


def split_file_for(path: str | None, split: str | None) -> Path | None:
    """The split file a dataset uses: `split` when given ('none': no split), else DATA/ganzoo-split.json if present."""
    if split == NO_SPLIT:
        return None
    if split:
        chosen = Path(split).expanduser()
        if not chosen.is_file():
            raise DataError(f"split file not found: {chosen}; make one with: ganzoo split DATA --out {chosen}")
        return chosen
    if path and Path(path).expanduser().is_dir() and (Path(path).expanduser() / SPLIT_FILE).is_file():
        return Path(path).expanduser() / SPLIT_FILE
    return None


def image_sides(data: ImageSet, split_file: Path | None) -> list[str] | None:
    """Each image's side from the split file, else the dataset's own split, else None (no split)."""
    if split_file is not None:
        files = read_split(split_file)
        missing = [f for f in data.files if f not in files]
        if missing or not data.files:
            example = f" (e.g. {missing[0]})" if missing else ""
            raise DataError(
                f"{len(missing) or len(data)} image(s) of {data.source or data.name} are not in {split_file}{example}: "
                "the data changed since the split was drawn; draw a new one with: ganzoo split DATA (the held-out images change)"
            )
        return [files[f] for f in data.files]
    if data.splits and any(data.splits):
        return ["holdout" if s in HOLDOUT_SIDES else "train" if s in TRAIN_SIDES else "other" for s in data.splits]
    return None


def select_part(data: ImageSet, part: str, split_file: Path | None) -> ImageSet:
    """`data` reduced to `part`; "all" (or no split, for "train") keeps every image.

    The result's `part` says what it holds: "train", "holdout" or "all" (no split known).
    """
    if part not in PARTS:
        raise DataError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    sides = image_sides(data, split_file) if part != "all" else None
    if sides is None:
        if part == "holdout":
            where = data.source or data.name
            raise NoHoldout(f"{where} has no held-out part: draw one with: ganzoo split {where} --holdout 0.2")
        data.part = "all"
        return data
    keep = [i for i, side in enumerate(sides) if side == part]
    if not keep:
        raise DataError(f"the {part} part of {data.source or data.name} is empty" + (f" (split file {split_file})" if split_file else ""))
    chosen = data.subset(keep) if len(keep) < len(data) else data
    chosen.part = part
    return chosen


def describe_split(split_file: Path | None) -> dict | None:
    """What a checkpoint records of its split: the file and its sha256 (to notice a changed split)."""
    if split_file is None:
        return None
    return {"file": str(split_file), "sha256": file_sha256(split_file)}


def check_split_unchanged(recorded: dict | None) -> None:
    """Warn when the split a checkpoint was trained with has changed: its held-out images may have been trained on."""
    if not recorded or not recorded.get("file"):
        return
    path = Path(recorded["file"])
    if not path.is_file():
        raise DataError(f"the split file this model was trained with is gone: {path}; restore it, or score with --data and a split of your own")
    if file_sha256(path) != recorded.get("sha256"):
        logger.warning("%s changed since this model was trained: some 'held-out' images may be training images", path)


def warn_if_training_images(real: ImageSet) -> None:
    """Say so when scores are computed against images that include the training images."""
    if real.part != "holdout":
        logger.warning(
            "%s has no held-out split: scoring against all %d images, the training images among them "
            "(draw a split with: ganzoo split %s --holdout 0.2, then train again)", real.source or real.name, len(real), real.source or "DATA",
        )
