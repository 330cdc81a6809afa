"""`--executor ray` on a local Ray (one Ray start for this module): the same results as the
trainings run one after another in this process, and a failed task reported by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import ganzoo.api
from ganzoo.api import GanzooError, TrainTask, build_executor
from test_executors import TINY, assert_same_outputs, plugins, run_sweep  # noqa: F401  (plugins: the module's autouse fixture)

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'ganzoo[ray]'")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One small local Ray for the module (its start costs seconds); the executor uses a Ray it finds running."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_tasks_give_the_same_results_and_name_a_failed_run(tmp_path: Path) -> None:
    sequential, on_ray = tmp_path / "sequential", tmp_path / "ray"
    run_sweep(sequential)
    run_sweep(on_ray, "ray", ray_gpus_per_run=0)
    assert_same_outputs(sequential, on_ray)
    assert sorted(p.name for p in (on_ray / "logs").glob("*.log")) == ["base.log", "noise_factor=0.1.log"]

    executor = build_executor("ray")
    results = executor.run([TrainTask("bad", {**TINY, "arch": "nope", "out": str(tmp_path / "bad")})], tmp_path / "logs")
    assert not results["bad"].ok and "unknown architecture 'nope'" in results["bad"].error
    assert ray.is_initialized()  # a Ray it did not start is left running
    with pytest.raises(GanzooError, match="--ray-gpus-per-run must be >= 0"):
        build_executor("ray", ray_gpus_per_run=-1)
    assert ganzoo.api.registry("executors").get("ray").description.startswith("Ray tasks")
