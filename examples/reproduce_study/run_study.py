"""Rerun the seed study (Tables 1-6) on ../shared/data/cxr with the `ganzoo_study` functions.

Default: a CPU scale meant for a 2-core machine (tiny epoch counts, few images per score);
`--full` uses the study's settings (500 epochs, batch 128, 1000+ images per score) on a GPU.
Outputs go to runs/study (ignored by git); the X-rays are only read, never copied.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ganzoo_study import augment, classify, compare, sweep

REPO = Path(__file__).resolve().parents[2]
CXR = REPO.parent / "shared" / "data" / "cxr"

SCALES = {
    "cpu": {"epochs": 2, "epochs_curve": [1, 2, 4], "images": [100, 200, 400], "eval_n": 64, "max_real": 128, "batch": 32,
            "gen_seeds": 2, "cls_seeds": 2, "cls_epochs": 2, "cls_res": 64, "cls_model": "resnet18", "device": "cpu", "metrics": ("fid", "kid")},
    "full": {"epochs": 50, "epochs_curve": [50, 100, 300, 500, 700], "images": [100, 200, 426], "eval_n": 1000, "max_real": None, "batch": 128,
             "gen_seeds": 5, "cls_seeds": 5, "cls_epochs": 20, "cls_res": 128, "cls_model": "densenet161", "device": "auto", "metrics": ("fid", "kid")},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="the study's scale (GPU)")
    parser.add_argument("--data", default=str(CXR))
    parser.add_argument("--out", default=str(REPO / "runs" / "study"))
    args = parser.parse_args()
    s = SCALES["full" if args.full else "cpu"]
    out = Path(args.out)
    base = {"arch": "wgan-gp", "res": 128 if args.full else 64, "data": args.data, "label": "covid", "epochs": s["epochs"],
            "batch_size": s["batch"], "device": s["device"]}
    common = {"metrics": s["metrics"], "eval_n": s["eval_n"], "max_real": s["max_real"], "device": s["device"]}
    timings = {}

    start = time.perf_counter()
    sweep(base, {"images": s["images"], "noise_factor": [0.0, 0.01, 0.1, 0.5, 1.0], "res": [128, 64], "normalize": ["none", "torch"],
                 "epochs": s["epochs_curve"]}, out / "tables-1-4", **common)
    timings["tables 1-4 (sweep)"] = time.perf_counter() - start

    start = time.perf_counter()
    configs = []
    for arch in ("wgan-gp", "dcgan"):
        path = out / f"{arch}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'arch = "{arch}"\nres = 64\ndata = "{args.data}"\nlabel = "covid"\nepochs = {500 if args.full else s["epochs"]}\n'
                        f'batch_size = {s["batch"]}\ndevice = "{s["device"]}"\n')
        configs.append(str(path))
    table5 = compare(configs, out / "table-5", metrics=s["metrics"], n=s["eval_n"], gen_seeds=s["gen_seeds"], max_real=s["max_real"], device=s["device"])
    timings["table 5 (compare)"] = time.perf_counter() - start

    start = time.perf_counter()
    synthetic = []
    for name, entry in table5["models"].items():
        target = out / f"augmented-{name}"
        if not (target / "manifest.json").exists():
            augment(entry["runs"][0]["checkpoint"], args.data, "covid", 426 + 200, target, device=s["device"])
        synthetic.append(str(target))
    classify(args.data, out / "table-6", positive="covid", synthetic=synthetic, model=s["cls_model"], seeds=s["cls_seeds"],
             epochs=s["cls_epochs"], res=s["cls_res"], device=s["device"])
    timings["table 6 (augment + classify)"] = time.perf_counter() - start
    for step, seconds in timings.items():
        print(f"{step}: {seconds / 60:.1f} min")
    print(f"reports: {out}/*/report.md")


if __name__ == "__main__":
    main()
