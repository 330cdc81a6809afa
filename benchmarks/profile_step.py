"""Where one training iteration of ganzoo spends its time: the top kernels, eager mode.

CUDA graphs hide the kernels from the profiler, so this runs the iteration eagerly (all
other switches as given) and prints torch.profiler's table, plus the wall time per
iteration with and without CUDA graphs for comparison. Run:
`python benchmarks/profile_step.py --models wgan-gp-64 --precision bf16`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import MODELS, sync, timed  # noqa: E402

from ganzoo.config import TrainConfig  # noqa: E402
from ganzoo.data import ImageSet  # noqa: E402
from ganzoo.trainer import Trainer  # noqa: E402


def trainer_for(name: str, batch: int, device: str, options: dict[str, object]) -> Trainer:
    arch, res = MODELS[name]
    images = torch.randint(0, 256, (4 * batch, 1, res, res), dtype=torch.uint8)
    data = ImageSet(name="random", images=images, fingerprint="random")
    config = TrainConfig(arch=arch, res=res, batch_size=batch, device=device, steps=10**6, out=tempfile.mkdtemp(), **options)
    return Trainer(config, data=data)


def seconds_per_step(trainer: Trainer, steps: int) -> float:
    return timed(trainer.training_step, steps, 5, 1, trainer.device)["seconds"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="wgan-gp-64")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    for name in args.models.split(","):
        options = {"precision": args.precision}
        cuda = args.device.startswith("cuda")
        graphed = seconds_per_step(trainer_for(name, args.batch_size, args.device, {**options, "cuda_graphs": True}), 10) if cuda else float("nan")
        trainer = trainer_for(name, args.batch_size, args.device, {**options, "cuda_graphs": False})
        eager = seconds_per_step(trainer, 10 if cuda else 1)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            for _ in range(3):
                trainer.training_step()
            sync(trainer.device)
        events = prof.key_averages()
        kernel_ms = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") / 3 / 1000
        print(f"== {name} {args.precision} batch {args.batch_size} on {args.device}: graphed {graphed * 1e3:.2f} ms/step, eager {eager * 1e3:.2f} ms/step, kernels {kernel_ms:.2f} ms/step")
        print(events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=args.rows, max_name_column_width=70))


if __name__ == "__main__":
    main()
