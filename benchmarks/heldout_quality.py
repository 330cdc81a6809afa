"""Held-out quality of trained GANs, several seeds: how the generator is sampled, and the floor.

For each configuration and training seed it trains (or reuses) a run with the data's split,
then scores against the held-out real images, at one generated count:
  live-eval     the live generator in eval mode (BatchNorm running statistics): ganzoo's default
  live-batch    the live generator in training mode (each image normalised with its batch of 128)
  live-recomp   eval mode after recomputing BatchNorm statistics over 16 x 128 noise vectors
  ema           the EMA generator (with --ema), as generate/evaluate/hub sample it
  ema-recomp    the EMA generator after recomputing its BatchNorm statistics
and the floor: as many real training images as generated ones, scored the same way.

    python benchmarks/heldout_quality.py --data ../shared/data/cxr --label covid \
        --split SPLIT.json --seeds 0,1,2 --set "augment=none,diffaugment" --base "ema=0.999" --out runs/ema-study

Prints how it was run and a markdown table (mean +/- std over seeds); writes results.json and grids.
A rerun skips finished runs; given more --metrics (e.g. kid,frd) it scores their samples with those too.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ganzoo import api
from ganzoo.models import seeded_noise

BN_BATCHES, BN_BATCH = 16, 128


def parse_values(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for item in filter(None, text.split(";")):
        key, values = item.split("=", 1)
        out[key.strip()] = [None if v == "none" else api.parse_option(key.strip(), v) for v in values.split(",")]
    return out


@torch.no_grad()
def sample(gan: api.GAN, net: torch.nn.Module, n: int, seed: int, train_mode: bool) -> torch.Tensor:
    z = seeded_noise(n, gan.noise_dim, seed)
    was = net.training
    net.train(train_mode)
    try:
        chunks = [gan.normalization.to_unit_range(net(z[i : i + BN_BATCH]).float()) for i in range(0, n, BN_BATCH)]
    finally:
        net.train(was)
    return api.to_uint8(torch.cat(chunks))


@torch.no_grad()
def recomputed(net: torch.nn.Module, noise_dim: int, seed: int) -> torch.nn.Module:
    """A copy whose BatchNorm running statistics are the exact average over fresh noise batches."""
    net = copy.deepcopy(net)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    rng = torch.Generator().manual_seed(seed + 99991)
    for _ in range(BN_BATCHES):
        net(torch.randn(BN_BATCH, noise_dim, 1, 1, generator=rng))
    return net.eval()


def score(fake: torch.Tensor, real: api.ImageSet, metrics: list[str]) -> dict[str, Any]:
    context = api.MetricContext(torch.device("cpu"), seed=0)
    results = api.compute_metrics(fake, real, api.get_metrics(metrics), context)
    return {m: {"value": r["value"], "std": r.get("std"), "n_fake": r["n_fake"], "n_real": r["n_real"]} for m, r in results.items()}


def model_and_data(checkpoint: str, n: int | None) -> tuple[api.GAN, api.ImageSet, api.ImageSet, int]:
    """The model, its held-out and training images, and how many images to generate."""
    gan = api.load(checkpoint, device="cpu")
    config = api.read_config(checkpoint)
    training = api.real_images_for(config, part="train")
    return gan, api.real_images_for(config, part="holdout"), training, n or len(training)


def samplings(gan: api.GAN, seed: int, wanted: list[str]) -> dict[str, tuple[torch.nn.Module, bool]]:
    """The wanted ways to sample: (network, sample in training mode?)."""
    make = {"live-eval": lambda: (gan.generator, False), "live-batch": lambda: (gan.generator, True),
            "live-recomp": lambda: (recomputed(gan.generator, gan.noise_dim, seed), False)}
    if gan.generator_ema is not None:
        make.update({"ema": lambda: (gan.generator_ema, False), "ema-recomp": lambda: (recomputed(gan.generator_ema, gan.noise_dim, seed), False)})
    return {k: build() for k, build in make.items() if k in wanted}


def add_missing_metrics(row: dict[str, Any], metrics: list[str], wanted: list[str], n: int | None) -> bool:
    """A rerun with more --metrics scores a finished row's samplings (the same samples) and floor with them."""
    todo = {v: [m for m in metrics if m not in row["scores"][v]] for v in row["scores"] if v in wanted or v == "real-train-floor"}
    todo = {v: ms for v, ms in todo.items() if ms}
    if not todo:
        return False
    gan, held_out, training, n = model_and_data(row["checkpoint"], n)
    variants = samplings(gan, row["seed"], list(todo))
    for variant, missing in todo.items():
        if variant == "real-train-floor":
            order = torch.randperm(len(training), generator=torch.Generator().manual_seed(row["seed"]))[:n]
            fake = training.images[order]
        else:
            net, train_mode = variants[variant]
            fake = sample(gan, net, n, seed=0, train_mode=train_mode)
        row["scores"][variant].update(score(fake, held_out, missing))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="a recipe (TOML/YAML) as `ganzoo train --config` reads it; --base adds to it")
    parser.add_argument("--data")
    parser.add_argument("--label")
    parser.add_argument("--split")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--base", default="", help="options for every run: 'arch=dcgan;res=64;ema=0.999'")
    parser.add_argument("--set", default="", help="grid of options: 'augment=none,diffaugment'")
    parser.add_argument("-n", type=int, default=None, help="generated images per score (default: as many as training images)")
    parser.add_argument("--metrics", default="kid", help="for every variant; fid is added for the default sampling")
    parser.add_argument("--variants", default="live-eval,live-batch,live-recomp,ema,ema-recomp", help="which samplings to score")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    recipe = {k.replace("-", "_"): v for k, v in (api.read_config_file(args.config) if args.config else {}).items() if k not in ("out", "seed")}
    recipe.update({k: v for k, v in (("data", args.data), ("label", args.label), ("split", args.split)) if v is not None})
    base = {**recipe, **{k: v[0] for k, v in parse_values(args.base).items()}}
    grid = parse_values(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"# heldout_quality: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU")
    print(f"# config {args.config}; base {base}; grid {grid}; seeds {seeds}", flush=True)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    metrics = [m for m in args.metrics.split(",") if m]
    wanted = args.variants.split(",")
    for combo in itertools.product(*grid.values()) if grid else [()]:
        setting = dict(zip(grid, combo))
        for seed in seeds:
            name = ",".join(f"{k}={v}" for k, v in setting.items()) + f",seed={seed}"
            if name in results:
                if add_missing_metrics(results[name], metrics, wanted, args.n):
                    (out / "results.json").write_text(json.dumps(results, indent=1))
                    print(name, "added", metrics, flush=True)
                continue
            values = {"device": "cpu", **base, **setting, "seed": seed}
            run = out / "runs" / name.replace("=", "-").replace(",", "_").replace(":", "-")
            start = time.perf_counter()
            checkpoint = api.train(api.TrainConfig.from_dict({**values, "out": str(run), "resume": "auto"}), quiet=True)
            train_s = time.perf_counter() - start
            gan, held_out, training, n = model_and_data(str(checkpoint), args.n)
            config = api.read_config(checkpoint)
            variants = samplings(gan, seed, wanted)
            default = "ema" if gan.generator_ema is not None else "live-eval"
            row: dict[str, Any] = {"setting": setting, "seed": seed, "checkpoint": str(checkpoint), "train_s": train_s,
                                   "steps": config["progress"]["step"], "n_train": len(training), "held_out": held_out.describe(), "scores": {}}
            for variant, (net, train_mode) in variants.items():
                fake = sample(gan, net, n, seed=0, train_mode=train_mode)
                row["scores"][variant] = score(fake, held_out, metrics + (["fid"] if variant == default and "fid" not in metrics else []))
                if variant == default:
                    api.write_grid(out / "grids" / f"{run.name}.png", fake[:64])
            if not any(r["n_train"] == n == len(training) and r["held_out"] == held_out.describe() and "real-train-floor" in r["scores"] for r in results.values()):
                # the floor: n training images in place of generated ones (all of them: the same for every seed)
                order = torch.randperm(len(training), generator=torch.Generator().manual_seed(seed))[:n]
                row["scores"]["real-train-floor"] = score(training.images[order], held_out, metrics + ["fid"])
            row["wall_s"] = time.perf_counter() - start
            results[name] = row
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps(results, indent=1))
            print(name, {v: round(s["kid"]["value"], 4) for v, s in row["scores"].items() if "kid" in s}, f"train {train_s:.0f}s", flush=True)
    print(table(results))


def table(results: dict[str, Any]) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in results.values():
        groups.setdefault(json.dumps(row["setting"]), []).append(row)
    variants = list(dict.fromkeys(v for rows in groups.values() for r in rows for v in r["scores"]))
    lines = ["| setting | seeds | " + " | ".join(f"KID {v}" for v in variants) + " | FID (default sampling) | train s |", "|---" * (len(variants) + 4) + "|"]
    for key, rows in groups.items():
        cells = []
        for v in variants:
            values = [r["scores"][v]["kid"]["value"] for r in rows if v in r["scores"] and "kid" in r["scores"][v]]
            cells.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else (f"{values[0]:.3f}" if values else "-"))
        fids = [s["fid"]["value"] for r in rows for v, s in r["scores"].items() if "fid" in s and v != "real-train-floor"]
        fid = f"{statistics.mean(fids):.1f} ± {statistics.stdev(fids):.1f}" if len(fids) > 1 else "-"
        lines.append(f"| {', '.join(f'{k}={v}' for k, v in json.loads(key).items()) or 'base'} | {len(rows)} | " + " | ".join(cells) + f" | {fid} | {statistics.mean(r['train_s'] for r in rows):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
