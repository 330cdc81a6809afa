"""Data-parallel training under `torchrun`: one process per device, the global batch sharded.

Each rank draws every random number for the *global* batch from the same seeded generator
and keeps its slice, sums its share of the loss, and gradients are averaged across ranks
before each optimizer step; BatchNorm statistics are computed over the global batch. So N
processes follow one process's training with the same global batch, up to float rounding.

Gradients are averaged with one flat all-reduce after backward rather than through the
DistributedDataParallel wrapper: the gradient penalty runs the critic several times and
differentiates twice per update, which DDP's per-forward bucket hooks do not support.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Shard:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slice(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor that holds the whole global batch."""
        n = x.shape[0] // self.world
        return x[self.rank * n : (self.rank + 1) * n]


def current() -> Shard:
    """The initialised job's shard, or a single process's when none is."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Shard()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device_type: str) -> Shard:
    """Join the job torchrun started: NCCL between GPUs, gloo on CPUs."""
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10))
    return current()


def per_sample_rand(n: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """U(0, 1) of shape (n, 1, 1, 1) per sample: drawn for the global batch, this rank's slice kept."""
    shard = current()
    values = torch.rand(n * shard.world, 1, 1, 1, generator=generator, device=device, dtype=dtype)
    return shard.slice(values)


def average_gradients(parameters: Iterable[nn.Parameter], world: int) -> None:
    """Mean of every gradient over the ranks, in one flat all-reduce."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers everywhere (they agree already when seeded alike)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose batch statistics cover the global batch (any device, gloo too).

    nn.SyncBatchNorm refuses CPU tensors; this one all-reduces per-channel sums with the
    differentiable all_reduce, so gradients flow through the statistics as in one process.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        n_local = torch.tensor([x.shape[0] * x.shape[2] * x.shape[3]], dtype=torch.float32, device=x.device)
        xf = x.float()
        stats = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), n_local])
        stats = all_reduce(stats)
        c = x.shape[1]
        count = stats[-1]
        mean = stats[:c] / count
        var = stats[c : 2 * c] / count - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                unbiased = var * count / (count - 1)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def globalize_batch_norms(module: nn.Module) -> int:
    """Swap every BatchNorm2d for GlobalBatchNorm2d in place, keeping weights and buffers."""
    swapped = 0
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement.to(next(child.buffers()).device))
            swapped += 1
        else:
            swapped += globalize_batch_norms(child)
    return swapped
