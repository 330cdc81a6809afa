"""Executors for sweep and compare: the same results whichever ran the trainings (in this process,
`--parallel 2` worker processes, submitit's debug executor; Ray in test_executors_ray.py), a
failed run reported by name while the others finish, reruns that skip finished runs, and a
SLURM-style preemption that saves, requeues and resumes to the uninterrupted run's weights."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import ganzoo.api
import ganzoo.cli
from ganzoo.api import Executor, GanzooError, TaskResult, TrainTask, build_executor
from ganzoo_executors.slurm import SubmititExecutor, minutes
from ganzoo_study import compare, sweep
from ganzoo_study.commands import EXECUTOR_FLAGS, _executor_options

TINY = {"arch": "dcgan", "steps": 2, "batch_size": 8, "images": 16, "log_every": 1, "device": "cpu"}
VARY = {"noise_factor": [0.0, 0.1]}


class MeanBrightness(ganzoo.api.Metric):
    """A cheap metric (no Inception): |mean of fake - mean of real| / 255."""

    def compute(self, fake: torch.Tensor, real: Any, context: Any) -> dict[str, Any]:
        return {"value": abs(fake.float().mean() - real.images.float().mean()).item() / 255}


class TestPlugins:
    @staticmethod
    @ganzoo.api.hookimpl
    def ganzoo_register_metrics(register: Any) -> None:
        register("mean-brightness", MeanBrightness())


@pytest.fixture(scope="module", autouse=True)
def plugins(executors_plugin: None) -> Any:
    """The executors plugin and the cheap metric; one torch thread, which every executor passes
    on to its workers (two workers on two cores)."""
    ganzoo.api.register_plugin(TestPlugins, name="brightness-test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        ganzoo.api.unregister_plugin("brightness-test")


class Recording(Executor):
    """Wraps an executor and records what it was given and what it returned."""

    def __init__(self, inner: Executor) -> None:
        self.inner, self.tasks, self.results = inner, [], {}

    def run(self, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
        self.tasks += [t.name for t in tasks]
        self.results = self.inner.run(tasks, logs)
        return self.results


def run_sweep(out: Path, executor: Any = "local", **options: Any) -> dict[str, Any]:
    return sweep(TINY, VARY, out, metrics=("mean-brightness",), eval_n=4, max_real=8, device="cpu", executor=executor, executor_options=options or None)


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(checkpoint) / "model.safetensors"))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def assert_same_outputs(reference: Path, other: Path) -> None:
    """results.csv, report.md (but for the output folder's name), every grid and every run's weights."""
    assert (other / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    report = (other / "report.md").read_text().replace(str(other), "OUT")
    assert report == (reference / "report.md").read_text().replace(str(reference), "OUT")
    grids = sorted(p.relative_to(reference) for p in (reference / "grids").glob("*.png"))
    assert grids and grids == sorted(p.relative_to(other) for p in (other / "grids").glob("*.png"))
    assert all((other / g).read_bytes() == (reference / g).read_bytes() for g in grids)
    for run in (reference / "runs").iterdir():
        assert same_weights(run / "last", other / "runs" / run.name / "last"), run.name


def test_results_are_the_same_whichever_executor_ran_them(tmp_path: Path) -> None:
    sequential = tmp_path / "sequential"
    run_sweep(sequential)
    assert not (sequential / "logs").exists()  # one after another, in this process, as before

    parallel = Recording(build_executor("local", parallel=2))
    run_sweep(tmp_path / "parallel", parallel)
    assert sorted(parallel.tasks) == ["base", "noise_factor=0.1"]
    assert all(r.ok and r.log.is_file() and r.stats["peak_rss_mb"] > 0 for r in parallel.results.values())
    assert_same_outputs(sequential, tmp_path / "parallel")

    run_sweep(tmp_path / "submitit", "submitit", slurm_cluster="debug")
    assert list((tmp_path / "submitit" / "logs" / "submitit").iterdir())
    assert_same_outputs(sequential, tmp_path / "submitit")

    class NoTraining(Executor):
        def run(self, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
            raise AssertionError(f"finished runs were given to the executor again: {[t.name for t in tasks]}")

    again = run_sweep(tmp_path / "parallel", NoTraining())
    assert [r["metrics"]["mean-brightness"]["mean"] for r in again["rows"]] == [
        r["metrics"]["mean-brightness"]["mean"] for r in json.loads((sequential / "results.json").read_text())["rows"]]


def test_a_failed_run_is_named_the_others_finish_and_a_rerun_retries_only_it(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    first = Recording(build_executor("local", parallel=2, gpus="3,5"))
    vary = {"arch": ["nope", "dcgan"]}  # dcgan is the base's
    with pytest.raises(GanzooError, match=r"1 of 2 training run\(s\) failed: arch=nope: unknown architecture 'nope'.*\(log: .*arch=nope\.log\)"):
        sweep(TINY, vary, out, metrics=("mean-brightness",), eval_n=4, max_real=8, device="cpu", executor=first)
    assert first.tasks == ["arch=nope", "base"]
    assert (out / "runs" / "base" / "done.json").is_file() and not (out / "runs" / "arch=nope" / "done.json").exists()
    # --gpus 3,5: CUDA_VISIBLE_DEVICES round-robin over the runs in order (they trained on the CPU here).
    assert [first.results[name].stats.get("cuda_visible_devices") for name in first.tasks] == ["3", "5"]

    again = Recording(build_executor("local"))
    with pytest.raises(GanzooError, match="1 of 1 training run"):
        sweep(TINY, vary, out, metrics=("mean-brightness",), eval_n=4, max_real=8, device="cpu", executor=again)
    assert again.tasks == ["arch=nope"]


def test_compare_trains_all_its_config_files_in_one_batch_on_the_executor(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text('arch = "dcgan"\nsteps = 2\nbatch_size = 8\nimages = 16\nseed = 3\n')
    kwargs = {"metrics": ("mean-brightness",), "n": 4, "gen_seeds": 2, "train_seeds": 2, "max_real": 8, "device": "cpu"}
    here = compare([str(config)], tmp_path / "here", **kwargs)
    on_jobs = SubmititExecutor(slurm_cluster="debug")
    jobs = compare([str(config)], tmp_path / "jobs", executor=on_jobs, **kwargs)
    assert sorted(on_jobs.jobs) == ["tiny-seed3", "tiny-seed4"]  # one job array for every model and seed
    assert (tmp_path / "jobs" / "results.csv").read_text().replace(str(tmp_path / "jobs"), "") == (
        (tmp_path / "here" / "results.csv").read_text().replace(str(tmp_path / "here"), ""))
    assert jobs["models"]["tiny"]["over_training_seeds"] == here["models"]["tiny"]["over_training_seeds"]


def test_executor_options_are_checked_by_name_and_type() -> None:
    assert ganzoo.api.registry("executors").list() == ["local", "ray", "submitit"]
    assert build_executor("local", parallel="3", gpus="0,1").gpus == ["0", "1"]  # --executor-arg text is typed
    assert build_executor("submitit", slurm_setup="module load cuda", slurm_time="1-02:03:00", slurm_cluster="local").timeout_min == 1563
    with pytest.raises(GanzooError, match=r"executor 'local' has no option 'slurm_partition'; it takes: parallel, gpus, threads, processes"):
        build_executor("local", slurm_partition="gpu")
    with pytest.raises(GanzooError, match="option parallel must be an integer, got 'two'"):
        build_executor("local", parallel="two")
    with pytest.raises(GanzooError, match="--parallel must be >= 1"):
        build_executor("local", parallel=0)
    with pytest.raises(GanzooError, match="unknown executor 'slurm'; known: local, ray, submitit"):
        build_executor("slurm")
    given = {flag: None for flag in EXECUTOR_FLAGS} | {"parallel": 2, "executor_arg": ["threads=1", "slurm_sbatch=account=lab", "slurm_sbatch=qos=high"]}
    assert _executor_options(given) == {"parallel": 2, "threads": "1", "slurm_sbatch": ["account=lab", "qos=high"]}  # a key given twice: a list
    assert [minutes(t) for t in ("90", "30:30", "1:00:00", "2-0", "0:00:20")] == [90, 30, 60, 2880, 1]
    with pytest.raises(GanzooError, match="--slurm-time must be"):
        minutes("soon")


def test_slurm_flags_reach_the_job_arrays_sbatch_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"  # submitit looks for srun before it builds a SLURM executor
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    (fake / "sbatch").write_bytes((fake / "srun").read_bytes())
    (fake / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    executor = build_executor("submitit", slurm_partition="gpu", slurm_time="1:30:00", slurm_gpus_per_task=1, slurm_array_parallelism=8,
                              slurm_setup=["module load cuda/12.4", "source env/bin/activate"], slurm_sbatch=["account=lab", "qos=high"])
    slurm = executor.submitit_executor(tmp_path / "logs")._executor
    from submitit.slurm.slurm import _make_sbatch_string

    script = _make_sbatch_string(command="python -u -m submitit.core._submit DIR", folder=tmp_path / "logs" / "%j", map_count=20, **slurm.parameters)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-task=1", "#SBATCH --array=0-19%8", "#SBATCH --account=lab",
                 "#SBATCH --qos=high", "#SBATCH --signal=USR2@90", "#SBATCH --job-name=ganzoo", "module load cuda/12.4\nsource env/bin/activate"):
        assert line in script, line


def test_cli_flags_reach_their_executor_and_a_wrong_one_is_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    app = ganzoo.cli.build_app()
    result = runner.invoke(app, ["sweep", "--vary", "noise_factor=0,0.1", "--out", str(tmp_path / "s"), "--parallel", "2", "--slurm-partition", "gpu"])
    assert result.exit_code == 2 and "executor 'local' has no option 'slurm_partition'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["compare", "x.toml", "--out", str(tmp_path / "c"), "--executor", "submitit"])
    assert result.exit_code == 2 and "no SLURM here (sbatch not found)" in result.output
    result = runner.invoke(app, ["list", "executors"])
    assert result.exit_code == 0 and all(name in result.output for name in ("local", "submitit", "ray"))


# -- preemption: stop at a step's end, save, requeue (or resume in place), finish as if never stopped ----------


def wait_for_step(run: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = run / "log.jsonl"
        if log.exists() and any(json.loads(line).get("step", 0) >= step for line in log.read_text().splitlines() if line.strip()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{run} never reached step {step}")


LONG = {**TINY, "steps": 12}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(tmp_path_factory.mktemp("home")))
        return ganzoo.api.train({**LONG, "out": str(run)}, quiet=True)


def steps_logged(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines() if "images_per_s" in line]


def job_process(controller: int) -> int:
    """The process running a submitit local job: the child of its controller (Linux /proc)."""
    children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_submitit_local_job_preempted_is_requeued_and_ends_like_an_uninterrupted_run(tmp_path: Path, uninterrupted: Path) -> None:
    task = TrainTask("long", {**LONG, "out": str(tmp_path / "run")})
    executor = SubmititExecutor(slurm_cluster="local", slurm_time="10")

    def preempt() -> None:
        wait_for_step(task.out, 2)
        # What SLURM sends a job on preemption (preempt_send_user_signal) and before its time limit.
        os.kill(job_process(next(iter(executor.jobs.values()))._process.pid), signal.SIGUSR2)

    thread = threading.Thread(target=preempt, daemon=True)
    thread.start()
    result = executor.run([task], tmp_path / "logs")["long"]
    thread.join(timeout=1)
    assert result.ok, result.error
    log = Path(result.log).read_text() + Path(result.log).with_suffix(".err").read_text()
    assert "stopped by SIGUSR2, checkpoint saved; requeueing" in log and "Requeued job" in log and "resumed from" in log
    assert steps_logged(task.out) == list(range(1, 13))  # no step trained twice or skipped
    assert same_weights(result.checkpoint, uninterrupted)


def test_submitit_job_ends_on_sigterm_with_its_checkpoint_saved(tmp_path: Path) -> None:
    """SIGTERM (scancel, or a preemption SLURM requeues itself): save, end the job, no requeue."""
    task = TrainTask("long", {**LONG, "out": str(tmp_path / "run")})
    thread = threading.Thread(target=lambda: (wait_for_step(task.out, 2), os.kill(os.getpid(), signal.SIGTERM)), daemon=True)
    thread.start()
    result = SubmititExecutor(slurm_cluster="debug").run([task], tmp_path / "logs")["long"]
    thread.join(timeout=60)
    assert not result.ok and "stopped by SIGTERM" in result.error
    step = int(os.readlink(task.out / "last").split("-")[-1])
    assert 2 <= step < 12 and steps_logged(task.out)[-1] == step


def test_submitit_debug_job_stopped_by_sigusr1_resumes_in_place(tmp_path: Path, uninterrupted: Path) -> None:
    task = TrainTask("long", {**LONG, "out": str(tmp_path / "run")})
    thread = threading.Thread(target=lambda: (wait_for_step(task.out, 2), os.kill(os.getpid(), signal.SIGUSR1)), daemon=True)
    thread.start()
    result = SubmititExecutor(slurm_cluster="debug").run([task], tmp_path / "logs")["long"]
    thread.join(timeout=60)
    assert result.ok, result.error
    checkpoints = sorted(p.name for p in (task.out / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[-1] == "step-00000012"  # the one saved when stopped, and the final one
    assert same_weights(result.checkpoint, uninterrupted)
