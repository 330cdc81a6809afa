"""Built-in plugin: executors for the study's trainings (`--executor local|submitit|ray`).

`local` runs them on this machine (in this process, or `--parallel K` worker processes
spread over `--gpus`); `submitit` as a SLURM job array (extra `ganzoo[slurm]`); `ray` as Ray
tasks (extra `ganzoo[ray]`). submitit and Ray are imported only when their executor runs.
"""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_executors(register: Register) -> None:
    from .local import LocalExecutor
    from .ray_tasks import RayExecutor
    from .slurm import SubmititExecutor

    register("local", LocalExecutor)
    register("submitit", SubmititExecutor)
    register("ray", RayExecutor)
