"""`ImageSet`: preprocessed images and where they came from, what every dataset plugin returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch


@dataclass
class ImageSet:
    """Preprocessed images (uint8, N x 1 x H x W) and where they came from."""

    name: str
    images: torch.Tensor
    fingerprint: str
    files: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: int = 0
    # True for generated data (phantoms, simulations): the model card then says no patient data was used.
    synthetic: bool = False
    # Files left out and why ({path relative to the source: reason}); kept in the cache, so a cached load reports them again.
    skipped_files: dict[str, str] = field(default_factory=dict)
    # Where the images came from (a data folder), for messages and cache listings; never published.
    source: str = ""
    # Per image, the group a split must keep on one side (a salted patient hash; never a raw ID), or empty.
    groups: list[str] = field(default_factory=list)
    # Per image, the dataset's own split ("train", "val", "test"), e.g. MedMNIST's official one, or empty.
    splits: list[str] = field(default_factory=list)
    # What `load_dataset` selected: "train" or "holdout" of a split, "all" without one ("" before selection).
    part: str = ""

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def mean_std(self) -> tuple[float, float]:
        """Mean/std of the [0, 1]-scaled pixels, for `--normalize torch`."""
        x = self.images.float() / 255.0
        return float(x.mean()), float(x.std())

    def describe(self) -> dict:
        described = {"name": self.name, "fingerprint": self.fingerprint, "images": len(self), "skipped": self.skipped, "synthetic": self.synthetic}
        return {**described, "part": self.part} if self.part else described

    def subset(self, indices: list[int]) -> "ImageSet":
        """These images only; the fingerprint names the parent set and the chosen indices."""
        digest = hashlib.sha256(json.dumps([self.fingerprint, indices]).encode()).hexdigest()[:16]
        return ImageSet(
            name=self.name,
            images=self.images[indices],
            fingerprint=digest,
            files=[self.files[i] for i in indices] if self.files else [],
            labels=[self.labels[i] for i in indices] if self.labels else [],
            groups=[self.groups[i] for i in indices] if self.groups else [],
            splits=[self.splits[i] for i in indices] if self.splits else [],
            source=self.source,
            synthetic=self.synthetic,
        )
