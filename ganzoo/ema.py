"""The generator EMA's rule: a late start, a warmed-up decay, applied to weights and BatchNorm statistics alike.

Before update `start` the EMA copies the live generator (decay 0), as BigGAN's `ema_start`
does: while a GAN is still improving fast any average lags it, and on the chest X-rays a
50-step run sampled worse from its EMA than from its live generator (docs/ema.md).

A fixed decay of 0.999 averages over ~1,000 updates, so after a few hundred steps the EMA is
still mostly the initial weights. As timm's ModelEmaV3 does, the decay at update t (0-based)
is min(decay, (1 + t) / (warmup + t)): 0.1 at the first update with warmup 10, ~0.98 after
400, the asked 0.999 only after ~9,000. warmup 1 is a constant decay. BatchNorm running
statistics are averaged with the same decay (integer counters copied), so the statistics an
EMA generator normalises with in eval mode come from the same window as its weights.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_decay(decay: float, warmup: int, t: int, start: int = 0) -> float:
    """The decay of update number `t` (0-based) for a target `decay`, `warmup` (>= 1) and `start`."""
    if t < start:
        return 0.0
    return min(decay, (1.0 + t - start) / (warmup + t - start))


@torch.no_grad()
def update_ema(ema: nn.Module, live: nn.Module, weight: torch.Tensor | float) -> None:
    """ema <- ema + weight * (live - ema) for parameters and floating buffers; other buffers copied.

    `weight` is 1 - decay; a device tensor keeps the update replayable inside a CUDA graph.
    """
    for p_ema, p in zip(ema.parameters(), live.parameters()):
        p_ema.lerp_(p, weight)
    for b_ema, b in zip(ema.buffers(), live.buffers()):
        if b_ema.is_floating_point():
            b_ema.lerp_(b, weight)
        else:
            b_ema.copy_(b)
