"""`--executor submitit`: each training a task of one SLURM job array, through submitit.

Logs go to `OUT/logs/submitit/JOBID_TASK_*`. A job stopped by preemption or its time limit
saves a checkpoint at the end of the current step and is requeued; the requeued job resumes
from that checkpoint (slurm_job.py). `slurm_cluster=local` runs the same jobs as local
processes through submitit (signals and requeueing included), `debug` in this process.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ganzoo.api import Executor, GanzooError, TaskResult, TrainingInterrupted, TrainTask

from .progress import RunsView
from .tasks import error_line, to_result

CLUSTERS = ("slurm", "local", "debug")
POLL_S = 0.5
INSTALL = "pip install 'ganzoo[slurm]'"


def minutes(text: str) -> int:
    """SLURM's time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) in whole minutes, at least 1."""
    try:
        days, _, rest = text.rpartition("-")
        parts = [int(p) for p in rest.split(":")]
        if days:
            h, m, s = (parts + [0, 0])[:3]
        else:
            h, m, s = {1: (0, parts[0], 0), 2: (0, parts[0], parts[-1]), 3: tuple(parts)}[len(parts)]
        total = int(days or 0) * 1440 + h * 60 + m + s / 60
    except (ValueError, KeyError):
        raise GanzooError(f"--slurm-time must be minutes or [D-]HH:MM:SS, got {text!r}") from None
    if total <= 0:
        raise GanzooError(f"--slurm-time must be positive, got {text!r}")
    return max(1, round(total))


class SubmititExecutor(Executor):
    description = "a SLURM job array through submitit (pip install 'ganzoo[slurm]'); preempted or timed-out runs are requeued and resume"

    def __init__(self, slurm_partition: str | None = None, slurm_time: str = "60", slurm_gpus_per_task: int | None = None,
                 slurm_cpus_per_task: int | None = None, slurm_array_parallelism: int = 256, slurm_setup: list[str] | None = None,
                 slurm_max_requeues: int = 3, slurm_cluster: str | None = None, slurm_sbatch: list[str] | None = None) -> None:
        if slurm_cluster is not None and slurm_cluster not in CLUSTERS:
            raise GanzooError(f"slurm_cluster must be one of {', '.join(CLUSTERS)}, got {slurm_cluster!r}")
        for name, value in (("--slurm-gpus-per-task", slurm_gpus_per_task), ("--slurm-cpus-per-task", slurm_cpus_per_task)):
            if value is not None and value < 0:
                raise GanzooError(f"{name} must be >= 0, got {value}")
        if slurm_array_parallelism < 1:
            raise GanzooError(f"--slurm-array-parallelism must be >= 1, got {slurm_array_parallelism}")
        if slurm_cluster is None and shutil.which("sbatch") is None:
            raise GanzooError("no SLURM here (sbatch not found): run this on a SLURM login node, or pass "
                              "--executor-arg slurm_cluster=local to run the jobs as local processes")
        self.timeout_min = minutes(slurm_time)
        self.sbatch = {}  # any other sbatch option, e.g. account=lab or qos=high
        for item in slurm_sbatch or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise GanzooError(f"slurm_sbatch takes sbatch options as KEY=VALUE (e.g. account=lab), got {item!r}")
            self.sbatch[key.strip().lstrip("-").replace("-", "_")] = value
        self.partition, self.gpus, self.cpus = slurm_partition, slurm_gpus_per_task, slurm_cpus_per_task
        self.array_parallelism, self.setup, self.max_requeues, self.cluster = slurm_array_parallelism, list(slurm_setup or []), slurm_max_requeues, slurm_cluster

    def parameters(self) -> dict[str, Any]:
        """submitit's AutoExecutor parameters: generic ones, and `slurm_`/`local_` ones for that cluster."""
        params: dict[str, Any] = {"name": "ganzoo", "timeout_min": self.timeout_min, "nodes": 1, "tasks_per_node": 1,
                                  "slurm_array_parallelism": self.array_parallelism}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.gpus is not None:
            params["slurm_gpus_per_task"] = self.gpus
        if self.cpus is not None:
            params["cpus_per_task"] = self.cpus
        if self.sbatch:
            params["slurm_additional_parameters"] = self.sbatch
        if self.setup:
            params["slurm_setup"] = self.setup
            if self.cluster == "local":
                params["local_setup"] = self.setup
        return params

    def submitit_executor(self, folder: Path) -> Any:
        """submitit's AutoExecutor for this cluster with these parameters, writing to `folder`."""
        try:
            import submitit
        except ImportError:
            raise GanzooError(f"--executor submitit needs submitit: {INSTALL}") from None
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=self.cluster or "slurm", slurm_max_num_timeout=self.max_requeues)
        executor.update_parameters(**self.parameters())
        return executor

    def run(self, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
        executor = self.submitit_executor(logs / "submitit")
        from .slurm_job import TrainingJob

        # Off a cluster the jobs run on this machine: the caller's thread count gives the caller's floats.
        threads = torch.get_num_threads() if executor.cluster in ("local", "debug") else None
        jobs = self.jobs = dict(zip([t.name for t in tasks], executor.map_array(TrainingJob(threads), list(tasks))))
        results: dict[str, TaskResult] = {}
        with RunsView(tasks) as view:
            for name, job in jobs.items():
                view.started(name, f"job {job.job_id}")
            pending = dict(jobs)
            try:
                while pending:
                    for name, job in list(pending.items()):
                        if job.done():
                            results[name] = _result(name, job)
                            view.finished(results[name])
                            del pending[name]
                    view.refresh()
                    time.sleep(POLL_S if pending else 0)
            except KeyboardInterrupt:
                for job in pending.values():
                    job.cancel(check=False)
                raise TrainingInterrupted(f"cancelled {len(pending)} job(s); each saved a checkpoint at its step's end: "
                                          "rerun the same command to continue them") from None
        return results


def _result(name: str, job: Any) -> TaskResult:
    log = Path(job.paths.stdout)
    try:
        outcome = job.result()
    except Exception as error:  # the job itself failed (killed, out of memory, not requeued): its log says more
        lines = [line for line in str(error).splitlines() if line.strip()]
        return TaskResult(name, error=f"job {job.job_id} failed: {lines[-1].strip() if lines else error_line(error)}", log=Path(job.paths.stderr))
    return to_result(name, outcome, log)
