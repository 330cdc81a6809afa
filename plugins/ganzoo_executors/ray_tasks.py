"""`--executor ray`: each training a Ray task, on this machine or a Ray cluster (`--ray-address`).

`--ray-gpus-per-run 0.25` packs four runs on a GPU (Ray sets CUDA_VISIBLE_DEVICES for each).
A task whose worker dies is retried by Ray and continues its run's last checkpoint. Each
task's log goes to `OUT/logs/NAME.log`; on a cluster the run directories and that folder
must be on a file system every node sees, and ganzoo installed on every node.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ganzoo.api import Executor, GanzooError, TaskResult, TrainingInterrupted, TrainTask, logger, run_task

from .progress import RunsView
from .tasks import error_line, execute, to_result

POLL_S = 0.5
INSTALL = "pip install 'ganzoo[ray]'"


def train_in_ray(task: TrainTask, threads: int | None, log: str, env: dict[str, str]) -> dict[str, Any]:
    """The Ray task: this driver's GANZOO_* settings, the ganzoo log into `log`, `execute`'s data back."""
    os.environ.update(env)
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return execute(lambda: run_task(task, threads=threads))
    except TrainingInterrupted as stop:
        return {"error": str(stop)}
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


class RayExecutor(Executor):
    description = "Ray tasks (pip install 'ganzoo[ray]'): on this machine, or on a Ray cluster with --ray-address"

    def __init__(self, ray_address: str | None = None, ray_gpus_per_run: float = 0.0, ray_cpus_per_run: float = 1.0, ray_num_cpus: int | None = None) -> None:
        if ray_gpus_per_run < 0 or ray_cpus_per_run <= 0:
            raise GanzooError(f"--ray-gpus-per-run must be >= 0 and ray_cpus_per_run > 0, got {ray_gpus_per_run} and {ray_cpus_per_run}")
        self.address, self.gpus, self.cpus, self.num_cpus = ray_address, ray_gpus_per_run, ray_cpus_per_run, ray_num_cpus

    def run(self, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
        try:
            import ray
        except ImportError:
            raise GanzooError(f"--executor ray needs Ray: {INSTALL}") from None
        logs.mkdir(parents=True, exist_ok=True)
        started_here = not ray.is_initialized()
        if started_here:
            # A Ray already started in this process (a notebook, the tests) is used as it is.
            ray.init(address=self.address, num_cpus=None if self.address else self.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        try:
            return self._run(ray, tasks, logs)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray: Any, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
        # On this machine the driver's thread count gives its floats; on a cluster Ray's per-task default applies.
        threads = None if self.address else torch.get_num_threads()
        env = {k: v for k, v in os.environ.items() if k.startswith("GANZOO_")}
        remote = ray.remote(train_in_ray).options(num_cpus=self.cpus, num_gpus=self.gpus)
        refs = {remote.remote(task, threads, str(logs / f"{task.name}.log"), env): task.name for task in tasks}
        results: dict[str, TaskResult] = {}
        with RunsView(tasks) as view:
            for task in tasks:
                view.started(task.name, "Ray")
            try:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
                    for ref in ready:
                        name = refs.pop(ref)
                        log = logs / f"{name}.log"
                        try:
                            results[name] = to_result(name, ray.get(ref), log)
                        except ray.exceptions.RayError as error:  # the worker died, or the task was cancelled
                            results[name] = TaskResult(name, error=f"Ray task failed: {error_line(error).splitlines()[0]}", log=log)
                        view.finished(results[name])
                    view.refresh()
            except KeyboardInterrupt:
                for ref in refs:
                    ray.cancel(ref)
                raise TrainingInterrupted(f"cancelled {len(refs)} Ray task(s); rerun the same command to continue them") from None
        return results
