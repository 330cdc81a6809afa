"""K trainings at once against the same K trainings one after another, on one device.

For each model (DCGAN-64, WGAN-GP-64) and each K, K runs of the same length (seeds 0..K-1)
go through the local executor twice: one worker process at a time (`--executor-arg
processes=true`: the same process start per run on both sides), then `--parallel K`.
Aggregate img/s is the real images all K discriminators consumed divided by the wall time
(process starts and data loading included); per-run img/s is the median of each run's own
log records (steady state); peak memory is per worker process (RSS, and CUDA's allocator peak
on a GPU). Concurrent runs on a CPU get cores // K torch threads each, sequential ones all
cores. Run: `python benchmarks/parallel_throughput.py --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ganzoo.config import TrainConfig
from ganzoo.executors import TrainTask
from ganzoo.runs import train
from ganzoo.runtime import resolve_device
from ganzoo_executors.local import LocalExecutor

MODELS = {"dcgan-64": ("dcgan", 64), "wgan-gp-64": ("wgan-gp", 64)}


def config(model: str, args: argparse.Namespace, out: Path, seed: int) -> dict[str, Any]:
    arch, res = MODELS[model]
    return {"arch": arch, "res": res, "images": args.images, "batch_size": args.batch_size, "steps": args.steps, "seed": seed,
            "device": args.device, "log_every": max(1, args.steps // 10), "out": str(out)}


def images_per_run(values: dict[str, Any]) -> int:
    n_critic = 5 if values["arch"] == "wgan-gp" else 1
    return values["steps"] * values["batch_size"] * n_critic


def steady_rate(run: Path) -> float | None:
    """The median img/s of a run's log records after its first (which holds the warm-up)."""
    rates = [json.loads(line)["images_per_s"] for line in (run / "log.jsonl").read_text().splitlines() if "images_per_s" in line]
    return statistics.median(rates[1:] or rates) if rates else None


def measure(model: str, k: int, parallel: bool, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    tasks = [TrainTask(f"run-{i}", config(model, args, root / f"run-{i}", seed=i)) for i in range(k)]
    gpus = "0" if resolve_device(args.device).type == "cuda" else None
    threads = max(1, (os.cpu_count() or 1) // k) if parallel else None
    executor = LocalExecutor(parallel=k if parallel else 1, gpus=gpus, threads=threads, processes=True)
    started = time.perf_counter()
    results = executor.run(tasks, root / "logs")
    wall = time.perf_counter() - started
    failed = {name: r.error for name, r in results.items() if not r.ok}
    if failed:
        raise SystemExit(f"{model} K={k}: runs failed: {failed}")
    total = sum(images_per_run(t.config) for t in tasks)
    rates = [steady_rate(t.out) for t in tasks]
    cuda = [r.stats["peak_cuda_mb"] for r in results.values() if r.stats.get("peak_cuda_mb") is not None]
    return {
        "wall_s": round(wall, 2),
        "images": total,
        "aggregate_images_per_s": round(total / wall, 1),
        "per_run_images_per_s": round(statistics.median(r for r in rates if r is not None), 1),
        "peak_rss_mb_per_run": max(r.stats["peak_rss_mb"] for r in results.values()),
        "peak_cuda_mb_per_run": max(cuda) if cuda else None,
        "threads_per_run": threads or torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="dcgan-64,wgan-gp-64", help="Comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--k", default="1,2,4,8", help="Concurrent runs to try, comma-separated.")
    parser.add_argument("--steps", type=int, default=200, help="Generator steps per run.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=512, help="Synthetic phantoms per run (the built-in dataset).")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    device = resolve_device(args.device)
    ks = [int(k) for k in args.k.split(",")]
    rows = []
    load_before = round(os.getloadavg()[0], 1)  # other processes on a shared machine change every number
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GANZOO_HOME", str(Path(tmp) / "home"))
        for model in args.models.split(","):
            # One short run fills the dataset cache, so no measured run pays for drawing the phantoms.
            train(TrainConfig.from_dict({**config(model, args, Path(tmp) / f"warm-{model}", 0), "steps": 1}), quiet=True)
            for k in ks:
                sequential = measure(model, k, False, args, Path(tmp) / model / f"k{k}-sequential")
                concurrent = measure(model, k, True, args, Path(tmp) / model / f"k{k}-parallel")
                speedup = concurrent["aggregate_images_per_s"] / sequential["aggregate_images_per_s"]
                rows.append({"model": model, "k": k, "sequential": sequential, "parallel": concurrent, "speedup": round(speedup, 2)})
                print(f"{model:11} K={k}: one after another {sequential['aggregate_images_per_s']:8.1f} img/s ({sequential['wall_s']:.1f} s), "
                      f"at once {concurrent['aggregate_images_per_s']:8.1f} img/s ({concurrent['wall_s']:.1f} s): x{speedup:.2f}; "
                      f"per run {sequential['per_run_images_per_s']:.0f} vs {concurrent['per_run_images_per_s']:.0f} img/s; peak per run "
                      f"RSS {concurrent['peak_rss_mb_per_run']:.0f} MB" + (f", CUDA {concurrent['peak_cuda_mb_per_run']:.0f} MB" if concurrent["peak_cuda_mb_per_run"] else ""),
                      flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    how = {"device": f"{device} ({name})", "cpu_cores": os.cpu_count(), "load_average_before": load_before,
           "load_average_after": round(os.getloadavg()[0], 1), "torch": torch.__version__, "k": ks, "steps": args.steps,
           "batch_size": args.batch_size, "images": args.images,
           "each run": "its own worker process (ganzoo_executors.worker); sequential: one at a time, parallel: K at once"}
    print("how it was run: " + "; ".join(f"{k}={v}" for k, v in how.items()))
    for model in args.models.split(","):
        best = max((r for r in rows if r["model"] == model), key=lambda r: r["parallel"]["aggregate_images_per_s"])
        print(f"{model}: best K={best['k']} ({best['parallel']['aggregate_images_per_s']} img/s, x{best['speedup']} over one after another)")
    if args.json:
        args.json.write_text(json.dumps({"how": how, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
