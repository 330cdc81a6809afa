"""Data-parallel training under `torchrun`: one process per device, the global batch sharded.

Each rank draws every random number for the *global* batch from the same seeded generator
and keeps its slice, sums its share of the loss, and gradients are averaged across ranks
before each optimizer step; BatchNorm statistics are computed over the global batch. So N
processes follow one process's training with the same global batch, up to float rounding.

Gradients are averaged with one flat all-reduce after backward rather than through the
DistributedDataParallel wrapper: the gradient penalty runs the critic several times and
differentiates twice per update, which DDP's per-forward bucket hooks do not support.

Every rank must take the same decisions, or the collectives desynchronise: whether an update
is skipped for a non-finite loss travels in the gradient all-reduce, and work only rank 0
does (evaluation) is followed by a barrier with a long timeout.
"""

from __future__ import annotations

import contextvars
import datetime
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .errors import GanzooError

T = TypeVar("T")
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
# How long the other ranks wait for rank 0's evaluation (FID on the CPU can take an hour).
MAIN_ONLY_TIMEOUT = datetime.timedelta(hours=6)


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
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return current()


# -- per-sample randomness ----------------------------------------------------------------
@dataclass
class _Rows:
    """Where the tensors being computed sit in the global batch, and the draws made for it."""

    start: int
    n_global: int
    drawn: list[torch.Tensor]
    calls: int = 0


_ROWS: contextvars.ContextVar[_Rows | None] = contextvars.ContextVar("ganzoo_rows", default=None)


def draw_per_sample(n: int, draw: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """The `n` rows of a per-sample random draw that belong to the tensor being computed.

    `draw(m)` returns `m` rows drawn from the caller's generator; it is called for the whole
    global batch and the rows of this rank (and of this chunk, when the trainer computes a
    batch in chunks) are kept, so sample i gets the same numbers as in one process.
    """
    rows = _ROWS.get()
    if rows is None:
        shard = current()
        return draw(n * shard.world)[shard.rank * n : (shard.rank + 1) * n]
    if rows.calls == len(rows.drawn):
        rows.drawn.append(draw(rows.n_global))
    values = rows.drawn[rows.calls]
    rows.calls += 1
    if rows.start + n > values.shape[0]:
        raise GanzooError(f"a per-sample draw for {n} rows from row {rows.start} does not fit a global batch of {values.shape[0]}")
    return values[rows.start : rows.start + n]


def per_sample_rand(n: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """U(0, 1) of shape (n, 1, 1, 1) per sample, drawn as `draw_per_sample` says."""
    return draw_per_sample(n, lambda m: torch.rand(m, 1, 1, 1, generator=generator, device=device, dtype=dtype))


@dataclass
class ChunkDraws:
    """Per-sample draws of one batch that is computed in chunks of rows.

    The first chunk draws for the global batch; later chunks reuse those draws (the k-th
    draw of each chunk is the k-th of the first), so the generator advances as it would
    for the whole batch at once and every row gets its own numbers.
    """

    n_local: int
    shard: Shard = field(default_factory=current)
    drawn: list[torch.Tensor] = field(default_factory=list)

    def chunk(self, offset: int, terms: Iterator[T]) -> Iterator[T]:
        """`terms` for the chunk that starts at row `offset` of this rank's batch; the rows
        are in effect only while each term is computed, not while the caller holds it."""
        rows = _Rows(self.shard.rank * self.n_local + offset, self.n_local * self.shard.world, self.drawn)
        while True:
            token = _ROWS.set(rows)
            try:
                term = next(terms, None)
            finally:
                _ROWS.reset(token)
            if term is None:
                return
            yield term


# -- agreement between ranks --------------------------------------------------------------
def average_gradients(parameters: Iterable[nn.Parameter], world: int, finite: torch.Tensor | None = None) -> torch.Tensor | None:
    """Mean of every gradient over the ranks, in one flat all-reduce.

    `finite` (a bool tensor: this rank's losses were finite) rides along in the same
    all-reduce; the result says whether they were finite on every rank, so all ranks skip
    or all go on together.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if world == 1:
        return finite
    pieces = [g.reshape(-1) for g in grads]
    if finite is not None:
        dtype = grads[0].dtype if grads else torch.float32
        pieces.append((~finite).to(dtype).reshape(1))
    if not pieces:
        return None
    flat = torch.cat(pieces)
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g)).div_(world)
        offset += g.numel()
    return flat[-1] == 0 if finite is not None else None


_LONG_GROUP: tuple[dist.ProcessGroup, dist.ProcessGroup] | None = None


def _long_timeout_group() -> dist.ProcessGroup:
    """A side group for waits with a long timeout, apart from the training collectives';
    gloo, because monitored_barrier (which names a rank that never arrives) needs it."""
    global _LONG_GROUP
    world_group = dist.group.WORLD
    if _LONG_GROUP is None or _LONG_GROUP[0] is not world_group:
        _LONG_GROUP = (world_group, dist.new_group(backend="gloo", timeout=MAIN_ONLY_TIMEOUT))
    return _LONG_GROUP[1]


def on_main(work: Callable[[], T], timeout: datetime.timedelta = MAIN_ONLY_TIMEOUT) -> T | None:
    """Run `work` on rank 0 only; the other ranks wait for it at a barrier with `timeout`,
    rather than in their next collective, whose 10-minute timeout a long evaluation exceeds."""
    shard = current()
    if shard.world == 1:
        return work()
    group = _long_timeout_group()
    result = work() if shard.is_main else None
    dist.monitored_barrier(group=group, timeout=timeout)
    return result


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers everywhere (they agree already when seeded alike)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def _running() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def batch_norm_statistics(x: torch.Tensor) -> torch.Tensor:
    """This rank's element count, per-channel mean and sum of squared deviations (1 + C + C),
    in at least fp32. Centred per rank: E[x^2] - E[x]^2 from plain sums cancels badly where
    a channel's mean is large against its spread, and its gradient more so (0.7% off)."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    var, mean = torch.var_mean(xf, dim=(0, 2, 3), correction=0)
    n = x.numel() // x.shape[1]
    return torch.cat([mean.new_full((1,), n), mean, var * n])


def combine_statistics(stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count, mean and biased variance of all ranks' rows together from their stacked
    `batch_norm_statistics` (world, 1 + 2C): Chan et al.'s pairwise formula, a sum of
    non-negative terms, so the variance is never below zero."""
    c = (stats.shape[1] - 1) // 2
    counts, means, squares = stats[:, :1], stats[:, 1 : 1 + c], stats[:, 1 + c :]
    count = counts.sum()
    mean = (counts * means).sum(0) / count
    var = (squares.sum(0) + (counts * (means - mean) ** 2).sum(0)) / count
    return count, mean, var


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose batch statistics cover the global batch (any device, gloo too).

    nn.SyncBatchNorm refuses CPU tensors; this one all-gathers each rank's statistics with
    the differentiable all_gather, so gradients flow through them as in one process.
    In eval mode, or in a single process, it is nn.BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not _running():
            return super().forward(x)
        from torch.distributed.nn.functional import all_gather

        self._check_input_dim(x)
        return self.normalize(x, torch.stack(all_gather(batch_norm_statistics(x))))

    def normalize(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """`x` normalised with every rank's `batch_norm_statistics` (stacked); the running
        statistics are updated as nn.BatchNorm2d does (momentum None: cumulative average)."""
        count, mean, var = combine_statistics(stats)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        y = (x.to(mean.dtype) - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight.to(y.dtype)[None, :, None, None] + self.bias.to(y.dtype)[None, :, None, None]
        return y.to(x.dtype)


_GLOBAL_SUBCLASSES: dict[type, type] = {nn.BatchNorm2d: GlobalBatchNorm2d}


def _global_class(cls: type) -> type:
    """GlobalBatchNorm2d's statistics in front of a BatchNorm2d subclass's own methods."""
    if cls not in _GLOBAL_SUBCLASSES:
        _GLOBAL_SUBCLASSES[cls] = type(f"Global{cls.__name__}", (GlobalBatchNorm2d, cls), {"__module__": __name__})
    return _GLOBAL_SUBCLASSES[cls]


def globalize_batch_norms(module: nn.Module, prefix: str = "") -> int:
    """Make every BatchNorm2d (or subclass that keeps its forward) compute global batch
    statistics, in place: the same object, weights, buffers and hooks, only its class
    changes. Other batch norms would silently use per-process statistics, so they are refused."""
    swapped = 0
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if isinstance(child, (GlobalBatchNorm2d, nn.SyncBatchNorm)):
            continue
        if isinstance(child, nn.BatchNorm2d) and type(child).forward is nn.BatchNorm2d.forward:
            child.__class__ = _global_class(type(child))
            swapped += 1
        elif isinstance(child, nn.modules.batchnorm._BatchNorm):
            why = "overrides forward" if isinstance(child, nn.BatchNorm2d) else "is not a BatchNorm2d"
            raise GanzooError(
                f"layer {path} ({type(child).__name__}) {why}: its batch statistics would be per process under torchrun; "
                "train it in one process, or use nn.BatchNorm2d (or a subclass that keeps its forward)"
            )
        else:
            swapped += globalize_batch_norms(child, f"{path}.")
    return swapped
