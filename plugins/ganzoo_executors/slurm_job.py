"""One training as a submitit job, safe under preemption and time limits.

submitit asks for a checkpoint with SIGUSR2 (SUBMITIT_PREEMPT_SIGNAL) before the time limit
and, where the cluster sends user signals on preemption, when the job is preempted; sites
often use SIGUSR1. On either the trainer finishes its current step and saves a checkpoint,
then submitit's handler calls `checkpoint()`, which returns the same job (a
DelayedSubmission), requeues it and exits; the requeued job continues that run directory
(`--resume auto`), so the final weights are the ones an uninterrupted run gets. Without a
scheduler to requeue with (submitit's debug executor) the run resumes in place.

SIGTERM (a preemption without user signal, `scancel`, the end of the grace time) saves the
checkpoint and ends the job without requeueing it: SLURM requeues a preempted job itself
when its PreemptMode says so, and a cancelled job stays cancelled. Either way the same
command continues the run from that checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import submitit

from ganzoo.api import TrainingInterrupted, TrainTask, logger, run_task

from .tasks import execute


def requeue_signal() -> int:
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def requeue_signals() -> set[int]:
    return {signal.SIGUSR1, signal.SIGUSR2, requeue_signal()}


class _Stop:
    """A stop asked for by a signal, handed to the trainer (whose SIGTERM handler is installed
    while it trains) at once, or at its next log record when it was not training yet."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.forwarded = False

    def request(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self.forward()

    def forward(self, record: dict[str, Any] | None = None) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if self.signum is not None and not self.forwarded and callable(handler) and handler != self.request:
            self.forwarded = True
            handler(signal.SIGTERM, None)


class TrainingJob(submitit.helpers.Checkpointable):
    """`TrainingJob(threads)(task)` trains `task`; returns `execute`'s data (checkpoint or error)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def __call__(self, task: TrainTask) -> dict[str, Any]:
        handler, level = None, logger.level
        if not logger.handlers:  # ganzoo's lines into the job's log (submitit's logger has its own handler)
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        # Inside a submitit job this is its SignalHandler.checkpoint_and_try_requeue.
        requeue = signal.getsignal(requeue_signal())
        requeue = requeue if getattr(requeue, "__name__", "") == "checkpoint_and_try_requeue" else None
        stop = _Stop()
        main = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
        previous = {sig: signal.signal(sig, stop.request) for sig in requeue_signals() | {signal.SIGTERM}} if main else {}
        try:
            while True:
                try:
                    return execute(lambda: run_task(task, threads=self.threads, on_progress=stop.forward))
                except TrainingInterrupted as interrupted:
                    signum = stop.signum or interrupted.exit_code - 128
                    if signum not in requeue_signals():
                        return {"error": str(interrupted)}  # SIGTERM or SIGINT: the job ends, its checkpoint saved
                    logger.warning("%s: stopped by %s, checkpoint saved; %s", task.name, signal.Signals(signum).name,
                                   "requeueing" if requeue else "no scheduler to requeue with: resuming here")
                    if requeue is not None:
                        for sig, previous_handler in previous.items():
                            signal.signal(sig, previous_handler)
                        requeue(signum, None)  # calls self.checkpoint(task), requeues the job and exits
                    stop = _Stop()
                    for sig in previous:
                        signal.signal(sig, stop.request)
        finally:
            for sig, previous_handler in previous.items():
                signal.signal(sig, previous_handler)
            if handler is not None:
                logger.removeHandler(handler)
                logger.setLevel(level)

    def checkpoint(self, task: TrainTask) -> submitit.helpers.DelayedSubmission:
        """The trainer saved its checkpoint already: requeue this same job, which resumes it."""
        logger.info("%s: requeued; it continues from %s", task.name, task.out / "last")
        return submitit.helpers.DelayedSubmission(self, task)
