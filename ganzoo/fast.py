"""Speed switches of the trainer: which are on, and the small modules they need.

channels_last and the fused kernels default to on for every device (measured faster on
both a GPU and the CPU), CUDA graphs to on for a GPU, critic micro-batches to on for the
CPU; bf16 is opt-in. See docs/performance.md for what each one is worth.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

PRECISIONS = ("fp32", "bf16")
# Critic steps on the CPU run in chunks of this many images: a WGAN-GP critic step at batch
# 128 took 2.8 s (64px) and 1.7-2.0 s (128px) whole, 2.2-2.4 s and 1.2-1.3 s in chunks of 32
# (2-core CPU); the elementwise work of the penalty's double backward then stays in cache.
CPU_MICRO_BATCH = 32


@dataclass(frozen=True)
class FastOptions:
    """The resolved speed switches of one run (None in the config means: the device's default)."""

    precision: str = "fp32"
    channels_last: bool = False
    fused: bool = False
    cuda_graphs: bool = False
    micro_batch: int = 0

    @classmethod
    def resolve(
        cls, device: torch.device, precision: str = "fp32", channels_last: bool | None = None, fused: bool | None = None,
        cuda_graphs: bool | None = None, micro_batch: int | None = None,
    ) -> "FastOptions":
        return cls(
            precision=precision,
            channels_last=True if channels_last is None else channels_last,
            fused=True if fused is None else fused,
            cuda_graphs=device.type == "cuda" and (True if cuda_graphs is None else cuda_graphs),
            micro_batch=(CPU_MICRO_BATCH if device.type == "cpu" else 0) if micro_batch is None else micro_batch,
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


class UnfoldConv2d(nn.Module):
    """A convolution with few input channels as patches + one matrix product, output in NHWC.

    cuDNN's TF32 kernel for the critic's 1-channel first layer took 48 of the 115 ms of a
    WGAN-GP 128 step on an H100, far more than the shape needs. The patches are strided views (Tensor.unfold), one copy,
    then a GEMM; F.unfold is avoided because its CUDA kernel loops over the batch. Holds the
    original conv's parameters, so the state_dict is unchanged.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        patches = F.pad(x, (pw, pw, ph, ph)).unfold(2, kh, sh).unfold(3, kw, sw)  # N, C, OH, OW, kh, kw
        n, c, out_h, out_w = patches.shape[:4]
        rows = patches.permute(0, 2, 3, 1, 4, 5).reshape(n * out_h * out_w, c * kh * kw)
        weight = self.weight.reshape(self.weight.shape[0], -1).t()
        out = rows @ weight if self.bias is None else torch.addmm(self.bias, rows, weight)
        return out.view(n, out_h, out_w, -1).permute(0, 3, 1, 2)


def _plain_conv(module: nn.Module) -> bool:
    """An nn.Conv2d that UnfoldConv2d reproduces: ungrouped, undilated, numeric zero padding."""
    if type(module) is not nn.Conv2d:
        return False
    return module.groups == 1 and module.dilation == (1, 1) and module.padding_mode == "zeros" and isinstance(module.padding, tuple)


def swap_thin_convs(module: nn.Module, max_in_channels: int = 3) -> int:
    """Replace plain convolutions with at most `max_in_channels` inputs by UnfoldConv2d, in place."""
    swapped = 0
    for name, child in module.named_children():
        if _plain_conv(child) and child.in_channels <= max_in_channels:
            setattr(module, name, UnfoldConv2d(child))
            swapped += 1
        else:
            swapped += swap_thin_convs(child, max_in_channels)
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
