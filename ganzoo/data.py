"""Image datasets: decoding, the study's preprocessing, on-disk caching, and batching.

A dataset is decoded once into a uint8 tensor (N, 1, H, W) that is cached on disk (cache
`datasets`), keyed by the files' content and the preprocessing parameters, with the files it
skipped and why, so a cached load can say so again; training turns batches of it into floats
on the fly (scaling, optional torch Normalize, gray -> 3 channels).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .cache_entries import open_entry, remove_entry
from .caches import write_entry
from .clahe import clahe16
from .console import logger
from .errors import DataError
from .imageset import ImageSet
from .plugins import registry
from .splits import select_part, split_file_for

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
CACHE_VERSION = 4  # 3: 16-bit PNGs keep their depth through CLAHE and the resize; 4: 16-bit CLAHE as 8-bit
IMAGES_FILE = "images.safetensors"
META_FILE = "dataset.json"
MAX_PIXELS = 100_000_000  # larger images are refused before decoding (memory)

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # skipped files get our own message


@dataclass(frozen=True)
class Preprocessing:
    """The study's preprocessing: grayscale, CLAHE, square resize with INTER_AREA."""

    resolution: int = 64
    clahe: bool = True
    clahe_clip: float = 2.0
    clahe_tile: int = 8


@dataclass(frozen=True)
class DatasetOptions:
    """What a dataset builder receives."""

    path: str | None = None
    label: str | None = None
    max_images: int | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    seed: int = 0
    # The VOI window of medical datasets (DICOM): "CENTER,WIDTH", "auto", or None for the file's own.
    window: str | None = None
    # Which images of a split dataset (ganzoo/splits.py): "all", "train" or "holdout".
    part: str = "all"
    # The split file; None: DATA/ganzoo-split.json when present; "none": no split.
    split: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What a plugin registers for a dataset."""

    load: Callable[[DatasetOptions], ImageSet]
    description: str = ""
    needs_path: bool = False


class UnreadableImage(Exception):
    """A file that is not a usable image; the message says why."""


def decode_grayscale(path: Path, keep_depth: bool = False) -> np.ndarray:
    """Decode any PNG/JPEG as grayscale, or raise UnreadableImage saying why not.

    16-bit images stay uint16 with `keep_depth` (so CLAHE and the resize see every level;
    `reduce_to_uint8` after `preprocess`), else they are scaled (not truncated) to 8 bits; an
    alpha channel is composited on black, so a transparent background reads as empty film.
    """
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UnreadableImage(f"cannot read the file ({error.strerror or error})") from None
    if raw.size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    pixels = image_pixels(raw)
    if pixels > MAX_PIXELS:
        raise UnreadableImage(f"{pixels:,} pixels is over the limit of {MAX_PIXELS:,}")
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise UnreadableImage("not a decodable PNG/JPEG (truncated or not an image)")
    if image.dtype == np.uint16 and not keep_depth:
        image = reduce_to_uint8(image)
    elif image.dtype not in (np.uint8, np.uint16):
        raise UnreadableImage(f"unsupported pixel type {image.dtype}")
    if image.ndim == 3:
        if image.shape[2] == 4:
            top = 65535.0 if image.dtype == np.uint16 else 255.0
            alpha = image[:, :, 3:4].astype(np.float32) / top
            image = (image[:, :, :3].astype(np.float32) * alpha).round().astype(image.dtype)
        image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY) if image.shape[2] >= 3 else image[:, :, 0]
    return np.ascontiguousarray(image)


def reduce_to_uint8(image: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by scaling (65535 -> 255), the one place 16-bit data loses depth; uint8 passes through."""
    if image.dtype == np.uint8:
        return image
    return (image.astype(np.float32) / 257.0).round().astype(np.uint8)


def read_grayscale(path: Path) -> np.ndarray | None:
    """`decode_grayscale`, with None for a file that is not a usable image."""
    try:
        return decode_grayscale(path)
    except UnreadableImage:
        return None


def image_pixels(raw: np.ndarray) -> int:
    """Width x height from a PNG header (0 when unknown), to refuse huge images cheaply."""
    if raw.size >= 24 and raw[:8].tobytes() == b"\x89PNG\r\n\x1a\n":
        width, height = struct.unpack(">II", raw[16:24].tobytes())
        return width * height
    return 0


def preprocess(gray: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Center-crop to a square, CLAHE (at full size, as the study), resize with INTER_AREA.

    uint8 or uint16 in, the same type out, so a 16-bit source keeps its depth until
    `reduce_to_uint8`. 16-bit CLAHE limits contrast as the 8-bit one does (`clahe.clahe16`:
    OpenCV's own 16-bit CLAHE clips a 65536-bin histogram and is then nearly a no-op).
    """
    h, w = gray.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = gray[top : top + side, left : left + side]
    if prep.clahe:
        if image.dtype == np.uint16:
            image = clahe16(image, prep.clahe_clip, prep.clahe_tile)
        else:
            clahe = cv2.createCLAHE(clipLimit=prep.clahe_clip, tileGridSize=(prep.clahe_tile, prep.clahe_tile))
            image = clahe.apply(np.ascontiguousarray(image))
    if image.shape[0] != prep.resolution:
        interpolation = cv2.INTER_AREA if image.shape[0] > prep.resolution else cv2.INTER_CUBIC
        image = cv2.resize(image, (prep.resolution, prep.resolution), interpolation=interpolation)
    return image


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True).encode()).hexdigest()[:32]


def load_cached(key: str) -> ImageSet | None:
    """A decoded dataset from the cache, or None; a damaged entry is removed (and so rebuilt), never trusted."""
    with open_entry("datasets", key) as entry:
        if entry is None:
            return None
        try:
            images = load_file(str(entry.path / IMAGES_FILE))["images"]
            return ImageSet(images=images, **json.loads((entry.path / META_FILE).read_text()))
        except Exception as error:  # whatever is wrong with it, it is decoded again
            problem = error
    logger.warning("ignoring damaged dataset cache entry %s (%s); decoding again", key, problem)
    remove_entry("datasets", key, even_in_use=True)
    return None


def describe_preprocessing(prep: Preprocessing) -> str:
    clahe = f"CLAHE clip {prep.clahe_clip:g} tile {prep.clahe_tile}" if prep.clahe else "no CLAHE"
    return f"{prep.resolution}x{prep.resolution}, {clahe}"


def store_cached(key: str, data: ImageSet, preprocessing: Preprocessing | None = None) -> None:
    """Cache a decoded dataset (its images, files, labels and skipped files) atomically."""
    meta = {f.name: getattr(data, f.name) for f in fields(data) if f.name != "images"}
    labels = sorted(set(data.labels) - {""})
    what = f"{data.source or data.name} (fingerprint {data.fingerprint}): {len(data)} images, {data.skipped} skipped"
    what += f", label(s) {', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''}" if labels else ""
    details = {"source": data.source, "name": data.name, "fingerprint": data.fingerprint, "images": len(data), "skipped": data.skipped, "labels": labels}
    if preprocessing is not None:
        what += f"; {describe_preprocessing(preprocessing)}"
        details["preprocessing"] = asdict(preprocessing)
    with write_entry("datasets", key, what, details) as tmp:
        tmp.mkdir()
        save_file({"images": data.images.contiguous()}, str(tmp / IMAGES_FILE))
        (tmp / META_FILE).write_text(json.dumps(meta, sort_keys=True))


def list_image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def to_model_input(batch: torch.Tensor, channels: int, normalize: str = "none", mean_std: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float: [-1, 1] by default, or torch Normalize with the data's mean/std."""
    x = batch.float()
    if normalize == "none":
        x = x / 127.5 - 1.0
    else:
        mean, std = mean_std
        x = (x / 255.0 - mean) / std
    return x.expand(-1, channels, -1, -1) if channels != x.shape[1] else x


def load_dataset(name: str, options: DatasetOptions) -> ImageSet:
    """Build a registered dataset by name, reduced to `options.part` of its split (ganzoo/splits.py)."""
    spec: DatasetSpec = registry("datasets").get(name)
    if spec.needs_path and not options.path:
        raise DataError(f"dataset {name!r} needs a path: --data DIR")
    split_file = split_file_for(options.path, options.split)
    if split_file is None or options.part == "all" or options.max_images is None:
        return select_part(spec.load(options), options.part, split_file)
    # With a split file, --images N counts images of the part (N of the train part, say), a seeded subset.
    part = select_part(spec.load(replace(options, max_images=None)), options.part, split_file)
    if options.max_images >= len(part):
        return part
    order = torch.randperm(len(part), generator=torch.Generator().manual_seed(options.seed))[: options.max_images]
    chosen = part.subset(sorted(order.tolist()))
    chosen.part = part.part
    return chosen
