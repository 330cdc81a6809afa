"""Radiomic features of in-memory uint8 images, exactly as frd-score's FRDv1 extracts them from files.

frd-score reads each PNG with SimpleITK as float32 (spacing 1), masks the whole image except
one corner pixel (a pyradiomics workaround), makes the 2D image a (1, H, W) volume and runs
pyradiomics with the package's own `configs/extraction_2d.yaml` (Original + LoG + Wavelet
images, but pyradiomics skips LoG on a one-slice volume; firstorder, glcm, glrlm, glszm,
ngtdm; resampled to 2 px spacing). The feature vector is every non-diagnostic value plus the
numeric diagnostics: 398 values for a 2D image. An image pyradiomics cannot measure (a flat
one) gets a reason instead of features, where frd-score would stop. This module does the same from
arrays, so no image is written to disk, and reads the YAML as data: importing
`frd_score.frd` would cost seconds (scikit-learn, matplotlib) and switch the caller's
matplotlib backend to Agg. Images are spread over worker processes: fresh interpreters
running `python -m ganzoo_frd.features` (not forked, since the parent holds torch's threads; not
multiprocessing's spawn, which re-runs the caller's script in every child) that read the images
as .npy on stdin and answer JSON on stdout.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import numbers
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ganzoo.api import GanzooError

FEATURE_FORMAT = 1  # bump when what this module computes changes (it keys the real-feature cache)
LOG_SIGMA = [2.0, 3.0, 4.0, 5.0]  # frd-score's V1_DEFAULT_LOG_SIGMA, re-applied by its factory
INSTALL = "pip install 'ganzoo[frd]' (frd-score and pyradiomics-bhklab)"
PACKAGES = ("frd-score", "pyradiomics-bhklab", "SimpleITK", "PyWavelets")
WORKERS_ENV = "GANZOO_FRD_WORKERS"

_EXTRACTOR: dict[str, Any] = {}


def config_path() -> Path:
    """frd-score's FRDv1 2D extraction config, found without importing the package."""
    spec = importlib.util.find_spec("frd_score")
    if spec is None or spec.origin is None:
        raise GanzooError(f"the frd metric needs frd-score: {INSTALL}")
    path = Path(spec.origin).parent / "configs" / "extraction_2d.yaml"
    if not path.is_file():
        raise GanzooError(f"frd-score is installed without its FRDv1 config {path}; reinstall it: {INSTALL}")
    return path


def require_radiomics() -> None:
    """A GanzooError naming the install command when pyradiomics (or frd-score) cannot be used."""
    config_path()
    try:
        import pywt  # noqa: F401
        import SimpleITK  # noqa: F401
        from radiomics import featureextractor  # noqa: F401
    except ImportError as error:
        raise GanzooError(f"the frd metric needs pyradiomics ({error}): {INSTALL}") from error


def package_versions() -> dict[str, str]:
    found = {}
    for dist in PACKAGES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found


def identity() -> str:
    """Changes whenever the features would: the config's bytes, the packages' versions, this module's format."""
    parts = [f"format {FEATURE_FORMAT}", config_path().read_text(), *(f"{k} {v}" for k, v in sorted(package_versions().items()))]
    return "frd-v1/" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _extractor(path: str) -> Any:
    """pyradiomics' extractor for this config, built once per process, with its logging silenced."""
    if path not in _EXTRACTOR:
        import radiomics
        from radiomics import featureextractor

        radiomics.setVerbosity(60)
        logging.getLogger("radiomics").setLevel(logging.ERROR)
        extractor = featureextractor.RadiomicsFeatureExtractor(path)
        if "LoG" in extractor.enabledImagetypes:
            extractor.enableImageTypeByName("LoG", customArgs={"sigma": list(LOG_SIGMA)})
        _EXTRACTOR.clear()
        _EXTRACTOR[path] = extractor
    return _EXTRACTOR[path]


def _numeric(value: Any) -> float | None:
    """A feature value as a float; strings, tuples and settings (diagnostics) are not features."""
    if isinstance(value, (str, bytes)):
        return None
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiub"):
        return float(value)
    return None


def image_features(image: np.ndarray, path: str) -> dict[str, float]:
    """One 2D image's FRDv1 features by name (as frd-score's `process_image_mask_pair` makes them)."""
    import SimpleITK as sitk

    volume = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32)[np.newaxis])
    mask_array = np.ones((1, *image.shape), dtype=np.uint8)
    mask_array[0, 0, 0] = 0
    mask = sitk.GetImageFromArray(mask_array)
    mask.CopyInformation(volume)
    output = _extractor(path).execute(volume, mask)
    features = {}
    for name, value in output.items():
        number = _numeric(value)
        if number is not None:
            features[name] = number
    return features


def _extract_chunk(images: np.ndarray, path: str) -> list[dict[str, float] | str]:
    """Each image's features by name, or why pyradiomics could not compute them."""
    out: list[dict[str, float] | str] = []
    for image in images:
        if image.min() == image.max():
            out.append(f"a flat image (every pixel {int(image.min())})")
            continue
        try:
            out.append(image_features(image, path))
        except Exception as error:  # noqa: BLE001 - pyradiomics' reasons vary; the image is reported, not fatal
            out.append(f"pyradiomics failed: {type(error).__name__}: {error}")
    return out


def _in_worker(images: np.ndarray, path: str) -> list[dict[str, float] | str]:
    """Extract a chunk in a fresh interpreter (this module as a script); its crash is an error here."""
    buffer = io.BytesIO()
    np.save(buffer, images, allow_pickle=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-P", "-m", __name__, path], input=buffer.getvalue(), capture_output=True, env=env, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise GanzooError(f"radiomic feature worker failed (exit {done.returncode}): {lines[-1] if lines else 'no message'}")
    return json.loads(done.stdout)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def worker_count(requested: Any = None) -> int:
    """Processes for extraction: `requested` (the `frd_workers` option), else $GANZOO_FRD_WORKERS,
    else one per CPU but one (at most 16); 1 extracts in this process."""
    raw = requested if requested is not None else os.environ.get(WORKERS_ENV)
    if raw is None or raw == "":
        return max(1, min(16, cpu_count() - 1))
    try:
        workers = int(raw)
    except (TypeError, ValueError):
        raise GanzooError(f"frd workers must be a whole number >= 1, got {raw!r}") from None
    if workers < 1:
        raise GanzooError(f"frd workers must be >= 1, got {workers}")
    return workers


def as_gray(images: Any) -> np.ndarray:
    """uint8 (N, 1 or 3, H, W) (a torch tensor or an array) as uint8 (N, H, W); RGB by ITU-R 601 luma."""
    array = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] not in (1, 3):
        raise GanzooError(f"frd needs uint8 images (N, 1 or 3, H, W), got {array.dtype} {tuple(array.shape)}")
    if array.shape[1] == 1:
        return array[:, 0]
    luma = 0.299 * array[:, 0] + 0.587 * array[:, 1] + 0.114 * array[:, 2]
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def extract(images: np.ndarray, workers: int = 1) -> tuple[np.ndarray, list[str], dict[int, str]]:
    """FRDv1 features of uint8 (N, H, W) images: float64 (N, D), their names (pyradiomics' order),
    and {index: reason} for images without features (their rows are NaN)."""
    path = str(config_path())
    if len(images) == 0:
        raise GanzooError("no images to extract radiomic features from")
    workers = min(workers, len(images))
    if workers <= 1:
        results = _extract_chunk(images, path)
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = [r for part in pool.map(lambda chunk: _in_worker(chunk, path), np.array_split(images, workers)) for r in part]
    failures = {i: r for i, r in enumerate(results) if isinstance(r, str)}
    extracted = [r for r in results if not isinstance(r, str)]
    if not extracted:
        raise GanzooError(f"no radiomic features for any of the {len(images)} images: image 0 is {failures[0]}")
    names = list(extracted[0])
    if any(list(r) != names for r in extracted):
        raise GanzooError("pyradiomics returned different features for different images; FRD needs the same set for all")
    features = np.full((len(images), len(names)), np.nan)
    for i, r in enumerate(results):
        if not isinstance(r, str):
            features[i] = [r[name] for name in names]
    return features, names, failures


def _worker_main() -> None:
    """`python -m ganzoo_frd.features CONFIG` < images.npy > JSON list (features by name, or a reason)."""
    images = np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False)
    sys.stdout.write(json.dumps(_extract_chunk(images, sys.argv[1])))


if __name__ == "__main__":
    _worker_main()
