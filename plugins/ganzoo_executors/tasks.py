"""One training wherever it runs (this process, a worker process, a SLURM job, a Ray task),
and how it ended as plain data: what crosses a process boundary is JSON-able, never a pickle."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ganzoo.api import GanzooError, TaskResult, TrainingInterrupted, logger


def execute(train: Callable[[], Path]) -> dict[str, Any]:
    """Run `train`; {"checkpoint": ...} or {"error": one line}, plus "stats" (seconds, peak memory
    of this process, the GPUs it saw). TrainingInterrupted propagates: the caller decides whether
    a stop is the user's (stop everything) or a scheduler's (requeue)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    outcome: dict[str, Any]
    try:
        outcome = {"checkpoint": str(train())}
    except TrainingInterrupted:
        raise
    except Exception as error:  # any failure of one training is reported by name; the others go on
        if not isinstance(error, GanzooError):
            logger.exception("training failed")  # the traceback goes to this run's log
        outcome = {"error": error_line(error)}
    outcome["stats"] = stats(time.perf_counter() - started)
    return outcome


def error_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if isinstance(error, GanzooError) else f"{type(error).__name__}: {text}"


def stats(seconds: float) -> dict[str, Any]:
    # ru_maxrss is KiB on Linux and bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(rss, 1), "peak_cuda_mb": None if cuda is None else round(cuda, 1),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": torch.get_num_threads()}


def to_result(name: str, outcome: dict[str, Any] | None, log: Path | None = None, missing: str = "") -> TaskResult:
    """A TaskResult from `execute`'s data; `missing` says why there is none (a crashed worker)."""
    if not outcome:
        return TaskResult(name, error=missing or "the training ended without a result", log=log)
    checkpoint = outcome.get("checkpoint")
    return TaskResult(name, Path(checkpoint) if checkpoint else None, outcome.get("error"), log, outcome.get("stats", {}))
