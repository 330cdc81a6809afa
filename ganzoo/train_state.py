"""The trainer's state beside the weights: optimizer tensors and every RNG, for an exact resume.

Tensors go to trainer_state.safetensors and counters to trainer_state.json: no pickle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import STATE_JSON_FILE, STATE_TENSORS_FILE, read_tensors
from .errors import CheckpointError


def collect_state(counters: dict[str, Any], loop_rng: torch.Generator, optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) holding `counters`, the optimizers and the loop, torch, CUDA, numpy and Python RNGs."""
    np_state = np.random.get_state()
    tensors: dict[str, torch.Tensor] = {
        "rng.loop": loop_rng.get_state(),
        "rng.torch": torch.get_rng_state(),
        "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64)),
    }
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = cuda_state
    py_state = random.getstate()
    state: dict[str, Any] = {
        **counters,
        "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        for pid, pstate in sd["state"].items():
            for key, value in pstate.items():
                tensors[f"{name}.{pid}.{key}"] = value
        state[name] = {"param_groups": sd["param_groups"], "state_keys": {str(p): sorted(s) for p, s in sd["state"].items()}}
    return tensors, state


def restore_state(checkpoint: Path, device: torch.device, loop_rng: torch.Generator, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Load the optimizers and every RNG from `checkpoint`; returns the saved counters."""
    if not (checkpoint / STATE_TENSORS_FILE).exists():
        raise CheckpointError(f"{checkpoint} holds no trainer state (was it pushed to a hub?); it cannot be resumed")
    state = json.loads((checkpoint / STATE_JSON_FILE).read_text())
    tensors = read_tensors(checkpoint / STATE_TENSORS_FILE)
    for name, opt in optimizers.items():
        saved = state[name]
        params = [p for group in opt.param_groups for p in group["params"]]
        opt_state = {
            int(pid): {key: like_param(tensors.pop(f"{name}.{pid}.{key}").to(device), params[int(pid)]) for key in keys}
            for pid, keys in saved["state_keys"].items()
        }
        opt.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
    loop_rng.set_state(tensors.pop("rng.loop"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    name, pos, has_gauss, cached = state["rng_numpy"]
    np.random.set_state((name, tensors.pop("rng.numpy").numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["rng_python"]
    random.setstate((version, tuple(internal), gauss))
    cuda_states = [tensors.pop(k) for k in sorted(k for k in list(tensors) if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    if tensors:
        raise CheckpointError(f"{checkpoint}: unexpected trainer-state tensors {sorted(tensors)[:3]}")
    return {k: v for k, v in state.items() if k not in optimizers and not k.startswith("rng_")}


def like_param(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """Optimizer state in its parameter's memory layout (fused Adam wants them alike)."""
    if value.shape != param.shape:
        return value
    return torch.empty_like(param, dtype=value.dtype).copy_(value)
