"""What an audit compares: the model's training images, real images it never saw, and its samples.

Training images are the checkpoint's own training data (config.json records the dataset, its
path, label and preprocessing) unless `--data`/`--dataset` say otherwise; held-out images are
loaded exactly like them (`held_out_images`: today from `--holdout`). Generated images come
from the checkpoint, or from a folder of PNG/JPEG files at their own size, not CLAHE'd again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganzoo.api import (
    GAN,
    DatasetOptions,
    GanzooError,
    ImageSet,
    NoHoldout,
    Preprocessing,
    UnreadableImage,
    decode_grayscale,
    list_image_files,
    load,
    logger,
    load_dataset,
    model_sha256,
    preprocess,
    read_config,
    real_data_options,
    registry,
    resolve_checkpoint,
    to_uint8,
)

from .distances import DUPLICATE_RATIO, nearest
from .features import flat


@dataclass
class Samples:
    """The images under audit (uint8 (N, 1, H, W)) and where they came from."""

    images: torch.Tensor
    files: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    gan: GAN | None = None
    config: dict[str, Any] | None = None
    model_sha256: str | None = None


def as_gray(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, 1, H, W): 3-channel samples averaged (ganzoo trains on gray repeated)."""
    if images.shape[1] == 1:
        return images
    return images.float().mean(dim=1, keepdim=True).round().to(torch.uint8)


def model_samples(model: str | Path, n: int, seed: int, device: torch.device) -> Samples:
    """`n` samples of a checkpoint, run directory or hub location, with its config and weights' sha256."""
    directory = resolve_checkpoint(model)
    gan = load(directory, device=device)
    images = as_gray(to_uint8(gan.sample(n, seed=seed)))
    sha = model_sha256(directory)
    source = {"kind": "checkpoint", "model": str(model), "checkpoint": str(directory), "model_sha256": sha, "seed": seed, "n": n,
              "architecture": gan.architecture, "resolution": gan.resolution}
    return Samples(images, [f"sample-{i:05d}" for i in range(n)], source, gan, read_config(directory), sha)


def folder_samples(folder: str | Path, resolution: int | None = None) -> Samples:
    """Every PNG/JPEG under `folder`, center-cropped and resized to `resolution` (default: the
    first image's size); the sidecars `ganzoo generate` writes name the model, when they agree."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise GanzooError(f"--generated folder not found: {root}")
    paths = list_image_files(root)
    if not paths:
        raise GanzooError(f"no PNG/JPEG images in {root}")
    images, names = [], []
    for path in paths:
        try:
            gray = decode_grayscale(path)
        except UnreadableImage as error:
            raise GanzooError(f"{path}: {error}") from None
        resolution = resolution or min(gray.shape)
        images.append(preprocess(gray, Preprocessing(resolution=resolution, clahe=False)))
        names.append(path.relative_to(root).as_posix())
    sha = sidecar_model(paths)
    source = {"kind": "folder", "folder": str(root), "images": len(images), "resolution": resolution, "model_sha256": sha}
    return Samples(torch.from_numpy(np.stack(images)).unsqueeze(1), names, source, model_sha256=sha)


def sidecar_model(paths: list[Path]) -> str | None:
    """The model sha256 every image's `ganzoo generate` sidecar names, or None (any missing or differing)."""
    shas = set()
    for path in paths:
        try:
            shas.add(json.loads(path.with_suffix(".json").read_text()).get("model_sha256"))
        except (OSError, ValueError, AttributeError):
            return None
    return shas.pop() if len(shas) == 1 and None not in shas else None


def training_options(
    config: dict[str, Any] | None, data: str | None, dataset: str | None, label: str | None, resolution: int, clahe: bool
) -> tuple[str, DatasetOptions]:
    """Dataset name and options of the training images: the checkpoint's (the same images,
    `--images` subset included), or those given."""
    if config is not None:
        own = data is None and dataset is None
        recorded = config.get("dataset") or {}
        if own and not recorded.get("path") and registry("datasets").get(recorded.get("name") or "synthetic-cxr").needs_path:
            raise GanzooError("the checkpoint does not record where its training images are (hub models drop local paths): pass --data DIR")
        max_images = (config.get("training") or {}).get("images") if own else None
        return real_data_options(config, data=data, dataset=dataset, label=label, max_images=max_images, part="train")
    if data is None and dataset is None:
        raise GanzooError("auditing a folder of images needs the training images: --data DIR (or --dataset NAME)")
    return dataset or "folder", DatasetOptions(path=data, label=label, preprocessing=Preprocessing(resolution=resolution, clahe=clahe), part="train")


def held_out_images(name: str, options: DatasetOptions, holdout: str | Path | ImageSet | None) -> ImageSet:
    """Real images the model never saw, loaded like its training images: the held-out part of
    the data's split (`ganzoo split`), or `--holdout` (a folder, or the same kind of source as `--data`)."""
    if isinstance(holdout, ImageSet):
        return holdout
    if holdout is None:
        try:
            return load_dataset(name, replace(options, part="holdout", max_images=None))
        except NoHoldout:
            raise GanzooError(
                "the audit needs real images the model never saw: draw a split of the data (ganzoo split DATA) "
                "or pass --holdout DIR (same kind and label as the training data)"
            ) from None
    takes_path = bool(options.path) or registry("datasets").get(name).needs_path
    return load_dataset(name if takes_path else "folder", replace(options, path=str(holdout), max_images=None, part="all", split="none"))


def digests(images: torch.Tensor) -> list[str]:
    rows = images.reshape(len(images), -1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest() for row in rows]


def check_disjoint(training: ImageSet, held_out: ImageSet, seed: int = 0) -> int:
    """How many held-out images are pixel-identical to a training image; refuse when most are,
    or when the held-out images are typically closer to a training image than training images
    are to each other (`--holdout` is then the training data again, perhaps re-encoded, and
    every copy would pass unnoticed). The second check compares standardised pixels at most
    32 px wide, fitted to nothing, so neither side is favoured; on up to 256 images per side."""
    known = set(digests(training.images))
    same = sum(d in known for d in digests(held_out.images))
    if same * 2 > len(held_out):
        raise GanzooError(f"{same} of {len(held_out)} held-out images are pixel-identical to training images: --holdout must hold real images the model never saw")
    rng = np.random.default_rng(seed)
    pick = (lambda n: np.sort(rng.choice(n, min(n, 256), replace=False)))
    small = (lambda images: flat(torch.nn.functional.adaptive_avg_pool2d(images.float(), min(32, images.shape[-1])).round().to(torch.uint8))[None])
    index = small(training.images)
    chosen = pick(len(training))
    between = nearest(index[0, chosen], index, 2).distances[:, 1]  # the first is each image itself
    held = nearest(small(held_out.images[torch.from_numpy(pick(len(held_out)))])[0], index, 1).dcr
    if np.median(held) < DUPLICATE_RATIO * np.median(between):
        raise GanzooError(f"the held-out images are near-copies of training images (median pixel distance {np.median(held):.3g}, between "
                          f"training images {np.median(between):.3g}): --holdout must hold real images the model never saw")
    return same


def check_training(training: ImageSet, config: dict[str, Any] | None) -> bool | None:
    """Whether these are the images the checkpoint recorded training on (its dataset
    fingerprint); a mismatch is warned about (the folder changed, or other data was given)."""
    recorded = ((config or {}).get("dataset") or {}).get("fingerprint")
    if recorded is None:
        return None
    if recorded != training.fingerprint:
        logger.warning("the training images found (fingerprint %s) are not those the checkpoint was trained on (%s): "
                       "the audit compares with the images found", training.fingerprint, recorded)
        return False
    return True


def check_sizes(training: ImageSet, held_out: ImageSet, samples: Samples) -> None:
    sizes = {"training": tuple(training.images.shape[-2:]), "held-out": tuple(held_out.images.shape[-2:]), "generated": tuple(samples.images.shape[-2:])}
    if len(set(sizes.values())) > 1:
        raise GanzooError("images differ in size: " + ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in sizes.items()))
    if len(training) < 3:
        raise GanzooError(f"the audit needs at least 3 training images, got {len(training)}")
    if len(held_out) < 2:
        raise GanzooError(f"the audit needs at least 2 held-out images, got {len(held_out)}")
