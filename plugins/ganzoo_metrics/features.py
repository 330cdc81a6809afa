"""Inception pool features as the registered feature space "inception", and a cache of real features.

Scoring many checkpoints against the same real images should extract their features once:
they are stored as safetensors in the `features` cache (`$GANZOO_HOME/cache/features`), keyed
by the images' exact pixels and the extractor's identity (so by preprocessing, resolution and
weights). The last
real set's features are also remembered per image in memory, so the real-vs-real baseline,
which splits that set, extracts nothing again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch.utils.data import Dataset

from ganzoo.api import (
    FeatureExtractor,
    GanzooError,
    ImageSet,
    cache_entry_path,
    logger,
    open_cache_entry,
    progress,
    remove_cache_entry,
    write_cache_entry,
)

from .weights import EXTRACTOR_NAME, POOL, InceptionWeights, extractor_class, inception_weights, require_torch_fidelity

FEATURE_CACHE_VERSION = 2
POOL_DIM = 2048

Features = dict[str, torch.Tensor]

_EXTRACTORS: dict[tuple[str, str, tuple[str, ...]], torch.nn.Module] = {}


def feature_extractor(weights: InceptionWeights, device: torch.device, layers: Sequence[str] = (POOL,)) -> torch.nn.Module:
    """torch-fidelity's extractor with these weights on `device` (one kept per process)."""
    key = (weights.sha256, str(device), tuple(sorted(layers)))
    if key not in _EXTRACTORS:
        cls = extractor_class()
        _EXTRACTORS.clear()
        _EXTRACTORS[key] = cls(EXTRACTOR_NAME, sorted(layers), feature_extractor_weights_path=str(weights.path)).to(device)
    return _EXTRACTORS[key]


def as_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """Grayscale is replicated to 3 channels; resizing is left to torch-fidelity (TF1 bilinear)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise GanzooError(f"images must be uint8 (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """No TF32 on Ampere and newer GPUs meanwhile: it moves features ~5e-4 relative, and FID with them.

    Uses torch's legacy switches, which keep its per-operator settings consistent, and puts
    back exactly what was there.
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved_cudnn = cudnn.allow_tf32
    saved_matmul = ("fp32_precision", matmul.fp32_precision) if hasattr(matmul, "fp32_precision") else ("allow_tf32", matmul.allow_tf32)
    try:
        cudnn.allow_tf32 = False
        matmul.allow_tf32 = False
        yield
    finally:
        cudnn.allow_tf32 = saved_cudnn
        setattr(matmul, *saved_matmul)


class Uint8Dataset(Dataset):
    """uint8 (N, 1|3, H, W) images as the 3 x H x W items torch-fidelity's `calculate_metrics` takes."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = as_rgb_uint8(images)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index].contiguous()


@torch.no_grad()
def extract_layers(
    images: torch.Tensor,
    weights: InceptionWeights,
    device: torch.device,
    batch_size: int = 64,
    layers: Sequence[str] = (POOL,),
    description: str = "Inception features",
) -> Features:
    """Run uint8 images (N, 1|3, H, W) through Inception on `device`, in batches, with a progress bar."""
    images = as_rgb_uint8(images)
    extractor = feature_extractor(weights, device, layers)
    chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    with progress() as bar, full_fp32():
        task = bar.add_task(description, total=len(images))
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            out = extractor.convert_features_tuple_to_dict(extractor(batch.to(device, non_blocking=True)))
            for layer in layers:
                chunks[layer].append(out[layer].float().cpu())
            bar.advance(task, batch.shape[0])
    return {layer: torch.cat(parts) if parts else torch.empty(0, POOL_DIM) for layer, parts in chunks.items()}


class InceptionFeatures(FeatureExtractor):
    """TF-Inception-v3 (2015-12-05) 2048-d pool features, computed by torch-fidelity's network.

    Weights are resolved on use (see `weights.inception_weights`), so registering costs
    nothing; `classifier=True` insists on weights with the classifier head (Inception Score).
    """

    description = "TF-Inception-v3 2015-12-05 pool features (2048-d), torch-fidelity's network"

    def __init__(self, classifier: bool = False) -> None:
        self.classifier = classifier

    def weights(self) -> InceptionWeights:
        return inception_weights(classifier=self.classifier)

    def ready(self) -> None:
        require_torch_fidelity()
        self.weights()

    def identity(self) -> str:
        return f"tf-inception-2015-12-05/{self.weights().sha256}/{POOL}"

    def describe(self) -> dict[str, Any]:
        weights = self.weights()
        return {"extractor": "inception", "layer": POOL, "identity": f"tf-inception-2015-12-05/{weights.sha256}/{POOL}", **weights.describe()}

    def extract(self, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
        return self.extract_layers(images, device, batch_size)[POOL]

    def extract_layers(
        self, images: torch.Tensor, device: torch.device, batch_size: int = 64, layers: Sequence[str] = (POOL,), description: str = "Inception features"
    ) -> Features:
        """Several of torch-fidelity's layers at once (e.g. pool features and logits)."""
        require_torch_fidelity()
        return extract_layers(images, self.weights(), device, batch_size, layers, description)


def inception_extractor(classifier: bool = False) -> InceptionFeatures:
    """The registered instance (pool features) or one that needs the classifier head."""
    return INCEPTION if not classifier else InceptionFeatures(classifier=True)


INCEPTION = InceptionFeatures()


# -- which features belong to which pixels -------------------------------------------------------------

_ROWS: dict[str, Any] = {"identity": None, "index": {}, "features": None}


def _row_digests(images: torch.Tensor) -> list[bytes]:
    flat = images.contiguous().reshape(len(images), -1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def remember_rows(images: torch.Tensor, features: torch.Tensor, identity: str) -> None:
    """Keep these images' features by pixel digest (only the last set, so memory stays bounded)."""
    _ROWS.update(identity=identity, index={d: i for i, d in enumerate(_row_digests(images))}, features=features)


def forget_rows() -> None:
    """Drop the remembered features (tests, or to free memory)."""
    _ROWS.update(identity=None, index={}, features=None)


def recall_rows(images: torch.Tensor, identity: str) -> torch.Tensor | None:
    """Features of these images when every one of them was remembered with this identity."""
    if _ROWS["identity"] != identity or not len(images):
        return None
    index = _ROWS["index"]
    rows = [index.get(d) for d in _row_digests(images)]
    return None if any(r is None for r in rows) else _ROWS["features"][rows]


def features_for(images: torch.Tensor, extractor: FeatureExtractor, identity: str, device: torch.device, batch_size: int) -> tuple[torch.Tensor, bool]:
    """(features, extracted): remembered ones when the pixels are known, else extracted now."""
    known = recall_rows(images, identity)
    if known is not None:
        return known, False
    return extractor.extract(images, device, batch_size), True


FEATURES = "features"
_ANNOUNCED: set[str] = set()


def real_features_key(real: ImageSet, identity: str) -> str:
    """Cache key for these exact pixels (so preprocessing and resolution) and this extractor."""
    pixels = hashlib.sha256(real.images.contiguous().numpy().tobytes()).hexdigest()
    parts = {"v": FEATURE_CACHE_VERSION, "shape": list(real.images.shape), "pixels": pixels, "extractor": identity}
    return f"real-{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]}.safetensors"


def real_features_path(real: ImageSet, identity: str) -> Path:
    return cache_entry_path(FEATURES, real_features_key(real, identity))


def describe_real(real: ImageSet) -> str:
    """Which real set: where it came from, how many images of what size, its fingerprint."""
    height, width = real.images.shape[-2:]
    return f"{real.source or real.name} ({len(real)} images, {height}x{width}, fingerprint {real.fingerprint})"


def _load_cached(key: str, n: int) -> torch.Tensor | None:
    with open_cache_entry(FEATURES, key) as entry:
        if entry is None:
            return None
        try:
            features = load_file(str(entry.path))["features"]
            if features.dim() == 2 and features.shape[0] == n and bool(torch.isfinite(features).all()):
                return features
            raise ValueError(f"shape {tuple(features.shape)} or non-finite values")
        except Exception as error:  # a damaged cache entry is recomputed, never trusted
            logger.warning("ignoring damaged feature cache %s (%s)", entry.path, error)
    remove_cache_entry(FEATURES, key, even_in_use=True)
    return None


def _announce(key: str, message: str, *args: Any) -> None:
    """Say once per process where a real set's features came from (evaluations during training repeat)."""
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        logger.info(message, *args)


def cached_features(real: ImageSet, extractor: FeatureExtractor, device: torch.device, batch_size: int = 64) -> tuple[torch.Tensor, bool]:
    """Features of a real image set, from ganzoo's cache when already extracted: (features, cached).

    Written atomically; a damaged entry is recomputed. A part of the last real set (the
    baseline's halves) is assembled from memory and not written again.
    """
    identity = extractor.identity()
    key = real_features_key(real, identity)
    features = _load_cached(key, len(real))
    if features is not None:
        _announce(key, "real features of %s from the feature cache (key %s)", describe_real(real), key)
        remember_rows(real.images, features, identity)
        return features, True
    features, extracted = features_for(real.images, extractor, identity, device, batch_size)
    if not extracted:
        return features, True
    features = features.float().contiguous()
    if not bool(torch.isfinite(features).all()):
        raise GanzooError(f"real features of {real.name} hold NaN/Inf; no metric is computed from them")
    provenance = extractor.describe()
    what = f"{describe_real(real)}: {provenance.get('extractor', type(extractor).__name__)} features {tuple(features.shape)}"
    details = {"source": real.source, "name": real.name, "fingerprint": real.fingerprint, "images": len(real), "shape": list(real.images.shape), "extractor": identity}
    with write_cache_entry(FEATURES, key, what, details) as tmp:
        tmp.write_bytes(safetensors_bytes({"features": features}, metadata={"fingerprint": real.fingerprint, "extractor": identity}))
    _announce(key, "extracted real features of %s into the feature cache (key %s)", describe_real(real), key)
    remember_rows(real.images, features, identity)
    return features, False
