"""Speed switches of the trainer: which are on, and the small modules they need.

channels_last and the fused kernels default to on for every device (measured faster on
both a GPU and the CPU), CUDA graphs to on for a GPU; bf16 is opt-in. See
docs/performance.md for what each one is worth.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class FastOptions:
    """The resolved speed switches of one run (None in the config means: the device's default)."""

    precision: str = "fp32"
    channels_last: bool = False
    fused: bool = False
    cuda_graphs: bool = False

    @classmethod
    def resolve(cls, device: torch.device, precision: str = "fp32", channels_last: bool | None = None, fused: bool | None = None, cuda_graphs: bool | None = None) -> "FastOptions":
        return cls(
            precision=precision,
            channels_last=True if channels_last is None else channels_last,
            fused=True if fused is None else fused,
            cuda_graphs=device.type == "cuda" and (True if cuda_graphs is None else cuda_graphs),
        )

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast for convolutions; the cache is off because CUDA graphs need that."""
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


class InstanceNorm2dFP32(nn.Module):
    """InstanceNorm without affine: fp32 statistics, keeps the input's dtype and memory layout.

    nn.InstanceNorm2d's double backward (the gradient penalty) under bf16/channels_last
    runs through batch-norm kernels and layout transposes; plain elementwise ops do not.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        return ((xf - mean) * torch.rsqrt(var + self.eps)).to(x.dtype)


def swap_instance_norms(module: nn.Module) -> int:
    """Replace parameter-free nn.InstanceNorm2d layers in place; state_dict keys do not change."""
    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d) and not child.affine and not child.track_running_stats:
            setattr(module, name, InstanceNorm2dFP32(child.eps))
            swapped += 1
        else:
            swapped += swap_instance_norms(child)
    return swapped


class FloatScores(nn.Module):
    """D(x) returned in fp32, so losses and the penalty are computed in fp32 under autocast."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x).float()


class GraphedStep:
    """One whole training iteration (critic steps + generator step) replayed as a CUDA graph.

    `body(indices)` runs an iteration reading its real batches through the device tensor
    `indices` (n_critic x batch); before each replay the next indices are copied into it.
    The first `warmup` iterations run eagerly on a side stream, as capture requires.
    """

    def __init__(self, body: Callable[[torch.Tensor], dict[str, torch.Tensor]], indices: torch.Tensor, generators: list[torch.Generator], warmup: int = 3) -> None:
        self.body = body
        self.indices = indices
        self.generators = generators
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: dict[str, torch.Tensor] = {}
        self.stream = torch.cuda.Stream(device=indices.device)

    def __call__(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        self.indices.copy_(indices, non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
            return {k: v.clone() for k, v in self.outputs.items()}
        if self.warmup > 0:
            self.warmup -= 1
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                out = self.body(self.indices)
            torch.cuda.current_stream().wait_stream(self.stream)
            return out
        self.graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            self.graph.register_generator_state(generator)
        with torch.cuda.graph(self.graph):
            self.outputs = self.body(self.indices)
        self.graph.replay()
        return {k: v.clone() for k, v in self.outputs.items()}


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of `module` need no gradient inside the block (the generator step)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)
