"""benchmarks/bench.py runs both loops on the same files and reports consistent numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def run_bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(BENCH), "--models", "dcgan-64", "--batch-size", "4", "--steps", "1", "--warmup", "1", "--device", "cpu", "--json", str(out), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "how it was run:" in done.stdout
    return json.loads(out.read_text())


def test_bench_times_both_loops_on_the_same_files(image_folder, tmp_path):
    report = run_bench(tmp_path, "--data", str(image_folder), "--set", "channels_last=true")
    (row,) = report["rows"]
    seed, ours = row["seed_style"], row["ganzoo"]
    assert seed["images_per_s"] > 0 and ours["images_per_s"] > 0
    assert abs(row["ratio"] - ours["images_per_s"] / seed["images_per_s"]) < 1e-9
    assert report["how"]["data"] == f"24 PNG files of 40x40 from --data {image_folder}"
    assert report["how"]["ganzoo_options"]["channels_last"] is True


def test_bench_without_baseline_and_with_synthetic_files(tmp_path):
    report = run_bench(tmp_path, "--data", "", "--images", "6", "--source-size", "72", "--no-baseline")
    (row,) = report["rows"]
    assert row["seed_style"] is None and row["ratio"] is None and row["ganzoo"]["images_per_s"] > 0
    assert report["how"]["data"] == "6 PNG files of 72x72 from synthetic phantoms"


def test_profile_step_prints_the_time_per_step_and_the_op_table():
    script = BENCH.parent / "profile_step.py"
    cmd = [sys.executable, str(script), "--models", "wgan-gp-64", "--batch-size", "2", "--device", "cpu", "--rows", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "== wgan-gp-64 fp32 batch 2 on cpu: graphed nan ms/step, eager" in done.stdout
    assert "aten::" in done.stdout and "Self CPU time total" in done.stdout


def test_parallel_throughput_times_the_same_runs_both_ways(tmp_path):
    out = tmp_path / "parallel.json"
    cmd = [sys.executable, str(BENCH.parent / "parallel_throughput.py"), "--models", "dcgan-64", "--k", "1", "--steps", "1",
           "--batch-size", "4", "--images", "8", "--device", "cpu", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "how it was run:" in done.stdout and "best K=1" in done.stdout
    (row,) = json.loads(out.read_text())["rows"]
    for side in ("sequential", "parallel"):
        assert row[side]["images"] == 4 and row[side]["aggregate_images_per_s"] > 0 and row[side]["peak_rss_mb_per_run"] > 0
    assert row["speedup"] == round(row["parallel"]["aggregate_images_per_s"] / row["sequential"]["aggregate_images_per_s"], 2)
