"""MedMNIST from its official `.npz` (keys train_/val_/test_images and _labels), never downloaded.

`--data` names the file (`pneumoniamnist_64.npz`) or a folder plus name (`ROOT/pneumoniamnist_64`),
optionally with `:train`, `:val`, `:test` or `:all`. Without one, the part a caller asks for
(`DatasetOptions.part`) decides: training reads `train`, held-out scoring the official `test`, and
anything else `train`, so a GAN never sees the test part by accident. The official split is kept
per image in `ImageSet.splits`. When the
`medmnist` package is installed, the file's MD5 is checked against its published table.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch

from ganzoo.api import DataError, DatasetOptions, ImageSet, logger, preprocess

PARTS = ("train", "val", "test")
SOURCE = "https://zenodo.org/records/10519652 (MedMNIST v2/v3, the files NAME.npz and NAME_64/128/224.npz)"


OFFICIAL_PART = {"train": "train", "holdout": "test", "all": "train"}  # DatasetOptions.part -> the file's part


def locate(text: str, wanted: str = "all") -> tuple[Path, str]:
    """(the .npz file, the part to load) from `--data`; a missing file is one line saying where to get it."""
    part = OFFICIAL_PART.get(wanted, "train")
    match = re.fullmatch(r"(.+):(train|val|test|all)", text)
    if match:
        text, part = match.group(1), match.group(2)
    path = Path(text).expanduser()
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if not path.is_file():
        raise DataError(f"MedMNIST file not found: {path}; nothing is downloaded at run time: get {path.name} from {SOURCE} and put it at {path}")
    return path, part


def expected_md5(path: Path) -> str | None:
    """The published MD5 of this file when the `medmnist` package is installed, else None."""
    try:
        from medmnist.info import INFO  # optional: only for the check
    except ImportError:
        return None
    match = re.fullmatch(r"([a-z0-9]+?)(?:_(\d+))?", path.stem)
    info = INFO.get(match.group(1)) if match else None
    if not info:
        return None
    return info.get("MD5" if not match.group(2) or match.group(2) == "28" else f"MD5_{match.group(2)}")


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def label_text(row: np.ndarray) -> str:
    """One class as its number; multi-label rows (ChestMNIST) as the positive indices joined by '+', or 'none'."""
    row = np.atleast_1d(row)
    if row.size == 1:
        return str(int(row[0]))
    positive = [str(i) for i in np.flatnonzero(row)]
    return "+".join(positive) or "none"


def load_medmnist(options: DatasetOptions) -> ImageSet:
    """The chosen part of a MedMNIST file, preprocessed like every dataset."""
    if not options.path:
        raise DataError("dataset 'medmnist' needs a path: --data pneumoniamnist_64.npz")
    path, part = locate(options.path, options.part)
    md5 = file_md5(path)
    expected = expected_md5(path)
    if expected and md5 != expected:
        raise DataError(f"{path} has MD5 {md5}, but MedMNIST publishes {expected} for {path.name}: damaged or another file; download it again from {SOURCE}")
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {p: (archive[f"{p}_images"], archive[f"{p}_labels"]) for p in PARTS}
    except (KeyError, ValueError, OSError) as error:
        raise DataError(f"{path} is not a MedMNIST .npz (it needs train/val/test _images and _labels): {error}") from None
    images, labels, splits = [], [], []
    for name in PARTS if part == "all" else (part,):
        pixels, rows = arrays[name]
        if pixels.ndim == 4:  # colour sets: the gray of each image
            pixels = (pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
        images += list(pixels)
        labels += [label_text(r) for r in rows]
        splits += [name] * len(pixels)
    keep = list(range(len(images)))
    if options.label is not None:
        keep = [i for i in keep if labels[i] == options.label]
        if not keep:
            raise DataError(f"no image of {path.name}:{part} has label {options.label!r}; labels there: {', '.join(sorted(set(labels)))}")
    if options.max_images is not None and options.max_images < len(keep):
        chosen = torch.randperm(len(keep), generator=torch.Generator().manual_seed(options.seed))[: options.max_images]
        keep = sorted(keep[i] for i in chosen.tolist())
    stack = np.stack([preprocess(np.ascontiguousarray(images[i]), options.preprocessing) for i in keep])
    fingerprint = hashlib.sha256(f"{md5}:{part}:{keep}".encode()).hexdigest()[:16]
    logger.info("loaded %d images of %s (%s part%s)", len(keep), path.name, part, "; MD5 checked" if expected else "")
    return ImageSet(
        name="medmnist", images=torch.from_numpy(stack).unsqueeze(1), fingerprint=fingerprint, files=[f"{path.name}:{splits[i]}:{i}" for i in keep],
        labels=[labels[i] for i in keep], splits=[splits[i] for i in keep], source=str(path),
    )
