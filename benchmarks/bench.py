"""ganzoo's trainer against a seed-style training loop, on the same machine in one run.

The seed-style loop is what a tutorial writes: a DataLoader (2 workers) decoding PNG files
every epoch and resizing it to the model's resolution (as torchvision's Resize would), fp32,
Sigmoid + BCELoss for DCGAN, the gradient penalty through autograd.grad, `.item()` every
step and a fresh real batch per critic step. Both sides train the same networks on the same
PNG files: the shared chest X-rays (299x299) when they are there, else synthetic phantoms
written at that size; ganzoo decodes and resizes them once. img/s counts real images the
discriminator consumes. Run: `python benchmarks/bench.py --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import torch
import yaml
from torch import nn

from ganzoo.config import TrainConfig
from ganzoo.data import DatasetOptions, Preprocessing, load_dataset, preprocess
from ganzoo.models import create_gan
from ganzoo.trainer import Trainer

SHARED_CXR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cxr"
MODELS = {"dcgan-64": ("dcgan", 64), "wgan-gp-64": ("wgan-gp", 64), "wgan-gp-128": ("wgan-gp", 128)}
N_CRITIC = {"dcgan": 1, "wgan-gp": 5}


def write_pngs(root: Path, n: int, size: int) -> Path:
    """Synthetic chest phantoms as PNG files, for machines without the shared X-rays."""
    from ganzoo_datasets.phantoms import render_phantoms

    folder = root / f"png-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = render_phantoms(n, size, seed=0)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    return folder


class PngFiles(torch.utils.data.Dataset):
    """Decodes and resizes a PNG on every access, as tutorial loops do."""

    def __init__(self, folder: Path, res: int, channels: int) -> None:
        self.files = sorted(folder.rglob("*.png"))
        self.prep = Preprocessing(resolution=res, clahe=False)
        self.channels = channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = preprocess(cv2.imread(str(self.files[i]), cv2.IMREAD_GRAYSCALE), self.prep)
        x = torch.from_numpy(image).float().div(127.5).sub(1.0).unsqueeze(0)
        return x.expand(self.channels, -1, -1).contiguous()


def endless(loader: torch.utils.data.DataLoader) -> Any:
    while True:
        yield from loader


def seed_style(arch: str, res: int, channels: int, folder: Path, batch: int, steps: int, warmup: int, device: torch.device) -> dict[str, Any]:
    """The tutorial loop: every step a fresh DataLoader batch, losses read with .item()."""
    torch.manual_seed(0)
    gan = create_gan(arch, res=res, channels=channels).to(device)
    G, D = gan.generator, gan.discriminator
    if arch == "dcgan":
        D = nn.Sequential(D, nn.Sigmoid())
        lr, betas = 2e-4, (0.5, 0.999)
    else:
        lr, betas = 1e-4, (0.0, 0.9)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    bce = nn.BCELoss()
    loader = torch.utils.data.DataLoader(PngFiles(folder, res, channels), batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
    batches = endless(loader)
    n_critic = N_CRITIC[arch]

    def step() -> None:
        for _ in range(n_critic):
            real = next(batches).to(device)
            z = torch.randn(real.shape[0], 100, 1, 1, device=device)
            fake = G(z).detach()
            opt_d.zero_grad()
            if arch == "dcgan":
                d_loss = bce(D(real), torch.ones(real.shape[0], device=device)) + bce(D(fake), torch.zeros(real.shape[0], device=device))
            else:
                alpha = torch.rand(real.shape[0], 1, 1, 1, device=device)
                xhat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                grad = torch.autograd.grad(D(xhat).sum(), xhat, create_graph=True)[0]
                gp = ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
                d_loss = D(fake).mean() - D(real).mean() + 10 * gp
            d_loss.backward()
            opt_d.step()
            d_loss.item()
        opt_g.zero_grad()
        fake = G(torch.randn(batch, 100, 1, 1, device=device))
        g_loss = bce(D(fake), torch.ones(batch, device=device)) if arch == "dcgan" else -D(fake).mean()
        g_loss.backward()
        opt_g.step()
        g_loss.item()

    return timed(step, steps, warmup, batch * n_critic, device)


def ganzoo_loop(arch: str, res: int, channels: int, folder: Path, batch: int, steps: int, warmup: int, device: torch.device, options: dict[str, Any]) -> dict[str, Any]:
    """ganzoo's Trainer on the same PNGs (decoded once), its steps as `fit` runs them."""
    from ganzoo.loss_window import LossWindow

    data = load_dataset("folder", DatasetOptions(path=str(folder), preprocessing=Preprocessing(resolution=res, clahe=False)))
    config = TrainConfig(arch=arch, res=res, channels=channels, batch_size=batch, device=str(device), steps=steps + warmup, out=tempfile.mkdtemp(), **options)
    trainer = Trainer(config, data=data)
    window = LossWindow()

    def step() -> None:
        window.add(trainer.training_step(), batch)
        if trainer.step % config.log_every == 0:
            window.flush()

    result = timed(step, steps, warmup, batch * trainer.loss.n_critic, device)
    graphed = trainer._graphed is not None and trainer._graphed.graph is not None
    return {**result, "cuda_graphs": graphed, "joint_pass": bool(getattr(trainer.loss, "joint_pass", False))}


def timed(step: Any, steps: int, warmup: int, images_per_step: int, device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"images_per_s": steps * images_per_step / seconds, "seconds": seconds, "peak_gib": peak}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed generator steps per loop")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (CUDA graph capture, cudnn autotune)")
    parser.add_argument("--data", type=lambda text: Path(text) if text else None, default=SHARED_CXR if SHARED_CXR.is_dir() else None, help="folder of PNG files both loops read (default: the shared chest X-rays when present; '' for synthetic ones)")
    parser.add_argument("--images", type=int, default=1024, help="synthetic PNGs written when there is no --data folder")
    parser.add_argument("--source-size", type=int, default=299, help="side of the synthetic PNGs (the X-rays are 299x299)")
    parser.add_argument("--channels", type=int, default=1, choices=[1, 3], help="image channels of both loops' models")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--no-fast", action="store_true", help="ganzoo with every speed switch off (the plain loop)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", help="a training option for ganzoo's side, e.g. cuda_graphs=false (repeatable; for ablations)")
    parser.add_argument("--no-baseline", action="store_true", help="time ganzoo only (ablations of its switches)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    options: dict[str, Any] = {"precision": args.precision}
    if args.no_fast:
        options.update(channels_last=False, fused=False, cuda_graphs=False, micro_batch=0)
    for setting in args.settings:
        key, sep, value = setting.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE, got {setting!r}")
        options[key] = yaml.safe_load(value)
    how = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "torch": torch.__version__, "python": platform.python_version(), "batch_size": args.batch_size, "steps": args.steps,
        "warmup": args.warmup, "channels": args.channels, "ganzoo_options": options, "load_avg": os.getloadavg()[0],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GANZOO_HOME", str(Path(tmp) / "home"))
        folder = args.data or write_pngs(Path(tmp), args.images, args.source_size)
        files = sorted(folder.rglob("*.png"))
        if not files:
            parser.error(f"no PNG files under {folder}")
        height, width = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE).shape
        how["data"] = f"{len(files)} PNG files of {width}x{height} from {'--data ' + str(folder) if args.data else 'synthetic phantoms'}"
        for name in args.models.split(","):
            arch, res = MODELS[name]
            seed = None if args.no_baseline else seed_style(arch, res, args.channels, folder, args.batch_size, args.steps, args.warmup, device)
            ours = ganzoo_loop(arch, res, args.channels, folder, args.batch_size, args.steps, args.warmup, device, options)
            rows.append({"model": name, "seed_style": seed, "ganzoo": ours, "ratio": seed and ours["images_per_s"] / seed["images_per_s"]})
            print_row(rows[-1])
    print("how it was run:", json.dumps(how))
    if args.json:
        args.json.write_text(json.dumps({"how": how, "rows": rows}, indent=2))


def print_row(row: dict[str, Any]) -> None:
    def mem(r: dict[str, Any]) -> str:
        return "n/a" if r["peak_gib"] is None else f"{r['peak_gib']:.2f} GiB"

    s, g = row["seed_style"], row["ganzoo"]
    baseline = f"seed-style {s['images_per_s']:>9.1f} img/s ({mem(s)})   " if s else ""
    ratio = f"   ratio {row['ratio']:.2f}x" if s else ""
    print(f"{row['model']:<12} {baseline}ganzoo {g['images_per_s']:>9.1f} img/s ({mem(g)}, graphs {g['cuda_graphs']}){ratio}", flush=True)


if __name__ == "__main__":
    main()
