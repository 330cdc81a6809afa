"""`--executor local`: the trainings on this machine.

`--parallel 1` (the default) trains them one after another in this process, as `ganzoo
sweep` always did. `--parallel K` runs K at once, each in its own worker process (`python -m
ganzoo_executors.worker`), so a crash or an out-of-memory error ends one run only; `--gpus
0,1` gives the workers CUDA_VISIBLE_DEVICES round-robin (several runs may share a GPU: a
64x64 GAN uses a few percent of one). On a CPU each worker uses this process's torch thread
count unless `threads` says otherwise, so it computes the same floats as a sequential run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ganzoo.api import Executor, GanzooError, TaskResult, TrainingInterrupted, TrainTask, atomic_write_text, logger, run_task

from .progress import RunsView
from .tasks import execute, to_result

POLL_S = 0.25


class LocalExecutor(Executor):
    description = "this machine: one run after another in this process, or --parallel K worker processes (--gpus 0,1 spreads them)"

    def __init__(self, parallel: int = 1, gpus: str | None = None, threads: int | None = None, processes: bool | None = None) -> None:
        if parallel < 1:
            raise GanzooError(f"--parallel must be >= 1, got {parallel}")
        if threads is not None and threads < 1:
            raise GanzooError(f"executor option threads must be >= 1, got {threads}")
        self.gpus = [g.strip() for g in (gpus or "").split(",") if g.strip()]
        if gpus is not None and not self.gpus:
            raise GanzooError(f"--gpus must list GPU ids like 0,1, got {gpus!r}")
        self.parallel = parallel
        self.threads = threads
        # Worker processes whenever runs overlap or get their own GPU; `processes=True` asks for them anyway.
        self.processes = processes if processes is not None else parallel > 1 or bool(self.gpus)

    def run(self, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
        return self._in_workers(tasks, logs) if self.processes else self._in_process(tasks)

    def _in_process(self, tasks: Sequence[TrainTask]) -> dict[str, TaskResult]:
        results = {}
        for i, task in enumerate(tasks, 1):
            logger.info("training %d/%d: %s", i, len(tasks), task.name)
            results[task.name] = to_result(task.name, execute(lambda: run_task(task, threads=self.threads, quiet=False)))
            if not results[task.name].ok:
                logger.warning("%s failed: %s", task.name, results[task.name].error)
        return results

    def _in_workers(self, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
        logs.mkdir(parents=True, exist_ok=True)
        threads = self.threads or torch.get_num_threads()
        queue, running, results = list(enumerate(tasks)), {}, {}
        with RunsView(tasks) as view, _stop_requests() as stop:
            while queue or running:
                while queue and len(running) < self.parallel and stop.signum is None:
                    i, task = queue.pop(0)
                    gpu = self.gpus[i % len(self.gpus)] if self.gpus else None
                    running[task.name] = Worker.start(task, logs, threads, gpu)
                    view.started(task.name, f"GPU {gpu}" if gpu else "")
                for name, worker in list(running.items()):
                    if worker.process.poll() is not None:
                        results[name] = worker.result()
                        view.finished(results[name])
                        del running[name]
                if stop.signum is not None:
                    return self._stopped(stop.signum, running, view)
                view.refresh()
                time.sleep(POLL_S)
        return results

    @staticmethod
    def _stopped(signum: int, running: dict[str, Worker], view: RunsView) -> dict[str, TaskResult]:
        """Pass the stop on to every worker (each saves a checkpoint at its step's end), wait, and stop."""
        for worker in running.values():
            worker.process.send_signal(signal.SIGTERM)
        for name, worker in running.items():
            worker.process.wait()
            view.finished(worker.result())
        raise TrainingInterrupted(
            f"stopped by {signal.Signals(signum).name}: {len(running)} running training(s) saved a checkpoint; "
            "rerun the same command to continue", exit_code=128 + signum)


@dataclass
class Worker:
    """One worker process training one task; its output goes to LOGS/NAME.log."""

    task: TrainTask
    process: subprocess.Popen[bytes]
    log: Path
    result_file: Path

    @classmethod
    def start(cls, task: TrainTask, logs: Path, threads: int, gpu: str | None) -> Worker:
        spec, result_file, log = (logs / f"{task.name}.{suffix}" for suffix in ("task.json", "result.json", "log"))
        result_file.unlink(missing_ok=True)
        atomic_write_text(spec, json.dumps({"name": task.name, "config": task.config, "threads": threads, "result": str(result_file)}))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the same ganzoo and plugins as here
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        with open(log, "ab") as out:
            # A session of its own: a Ctrl-C reaches this process only, which passes it on once.
            process = subprocess.Popen([sys.executable, "-m", f"{__package__}.worker", str(spec)], stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        return cls(task, process, log, result_file)

    def result(self) -> TaskResult:
        outcome = json.loads(self.result_file.read_text(encoding="utf-8")) if self.result_file.exists() else None
        return to_result(self.task.name, outcome, self.log, missing=f"the worker exited with code {self.process.returncode} without a result; {_tail(self.log)}")


def _tail(log: Path) -> str:
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()] if log.exists() else []
    return f"its log ends: {lines[-1].strip()}" if lines else "its log is empty"


@dataclass
class _Stop:
    signum: int | None = None


@contextlib.contextmanager
def _stop_requests() -> Iterator[_Stop]:
    """SIGINT/SIGTERM become a flag the scheduling loop checks (main thread only)."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum: int, frame: Any) -> None:
        stop.signum = signum

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

