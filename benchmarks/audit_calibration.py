"""Planted-copy calibration of `ganzoo audit`, and its run time.

    PYTHONPATH=.:plugins python benchmarks/audit_calibration.py --data cxr          # the real X-rays (../shared/data/cxr)
    PYTHONPATH=.:plugins python benchmarks/audit_calibration.py --data synthetic    # phantoms, large enough for C_T
    PYTHONPATH=.:plugins python benchmarks/audit_calibration.py --timing 2000 --features pixels

Prints the calibration table (copy rate x detection rate x false alarms x C_T) as Markdown:
docs/audit.md shows its measured output. `--timing N` runs the whole `ganzoo audit` path (a
1-step checkpoint trained on N phantoms, N samples, N // 4 held-out images) and prints the
time of each step.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CXR = REPO.parent / "shared" / "data" / "cxr"


def parts(args: argparse.Namespace, seed: int) -> tuple:
    """Training, held-out and novel real images, disjoint (near-duplicate X-rays kept together)."""
    from ganzoo.api import DatasetOptions, Preprocessing, load_dataset
    from ganzoo_audit.calibration import disjoint_parts

    prep = Preprocessing(resolution=args.res)
    if args.data == "cxr":
        real = load_dataset("folder", DatasetOptions(path=str(CXR), preprocessing=prep))
        sizes = args.sizes or [len(real) // 2, len(real) // 4, len(real) - len(real) // 2 - len(real) // 4]
        return tuple(disjoint_parts(real, sizes, seed=seed))
    sizes = args.sizes or [1000, 4000, 4000]
    real = load_dataset("synthetic-cxr", DatasetOptions(max_images=sum(sizes), preprocessing=prep, seed=seed))
    return tuple(real.subset(list(range(a, a + s))) for a, s in zip((0, sizes[0], sizes[0] + sizes[1]), sizes))


def calibrate(args: argparse.Namespace) -> None:
    from ganzoo.api import resolve_device
    from ganzoo_audit.calibration import calibration_table, table_markdown
    from ganzoo_audit.features import feature_space

    every = []
    for seed in range(args.seed, args.seed + args.repeats):
        start = time.perf_counter()
        training, held_out, novel = parts(args, seed)
        loaded = time.perf_counter() - start
        n = args.n or len(novel)
        space = feature_space(args.features, resolve_device(args.device), seed=seed)
        start = time.perf_counter()
        rows = calibration_table(space, training, held_out, novel, n, q=args.q, cells=args.cells, seed=seed)
        every.append(rows)
        if seed == args.seed:
            print(f"data {args.data} {args.res}x{args.res}, features {args.features}: {len(training)} training, {len(held_out)} held-out "
                  f"({rows[0]['held_out_duplicates']} left out as duplicates), {len(novel)} novel; n = {n}, q = {args.q}, {args.cells} cells")
            print(table_markdown(rows))
            print(f"threshold {rows[0]['threshold']:.4g}, false-alarm bound {rows[0]['false_alarm_bound']:.4f}; "
                  f"loading {loaded:.1f} s, calibration {time.perf_counter() - start:.1f} s")
    if args.repeats > 1:
        print(f"\nover {args.repeats} random splits (seeds {args.seed}-{args.seed + args.repeats - 1}):")
        print(pooled_markdown(every))
    if args.json:
        Path(args.json).write_text(json.dumps(every, indent=2))


def pooled_markdown(every: list[list[dict]]) -> str:
    """Each row pooled over the splits: detections and false alarms summed, C_T as mean [min, max]."""
    lines = ["| copies | copy rate | detected | false alarms | false-alarm rate | bound (mean) | C_T mean [min, max] |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, row in enumerate(every[0]):
        same = [rows[i] for rows in every]
        detected, copies = sum(r["detected"] for r in same), sum(r["copies"] for r in same)
        alarms, others = sum(r["false_alarms"] for r in same), sum(r["n"] - r["copies"] for r in same)
        c_t = [r["c_t"] for r in same if r["c_t"] is not None]
        bound = sum(r["false_alarm_bound"] for r in same) / len(same)
        lines.append(f"| {row['kind']} | {100 * row['rate']:g}% | {detected}/{copies} | {alarms}/{others} | {100 * alarms / others:.2f}% "
                     f"| {100 * bound:.2f}% | {sum(c_t) / len(c_t):.2f} [{min(c_t):.2f}, {max(c_t):.2f}] |")
    return "\n".join(lines)


def timing(args: argparse.Namespace) -> None:
    import ganzoo
    from ganzoo.api import DatasetOptions, Preprocessing, load_dataset
    from ganzoo_audit import audit

    n = args.timing
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        checkpoint = ganzoo.train({"arch": "dcgan", "images": n, "steps": 1, "batch_size": 16, "res": args.res, "out": f"{tmp}/run", "device": "cpu"}, quiet=True)
        held_out = load_dataset("synthetic-cxr", DatasetOptions(max_images=max(2, n // 4), seed=args.seed + 1, preprocessing=Preprocessing(resolution=args.res)))
        print(f"setup (train a 1-step model on {n} phantoms, {len(held_out)} held-out phantoms): {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        report = audit(checkpoint, holdout=held_out, n=n, features=args.features, out=f"{tmp}/audit", device=args.device, seed=args.seed)
        total = time.perf_counter() - start
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in report["timing"].items())
    print(f"audit {n} generated vs {n} training + {len(held_out)} held-out at {args.res}x{args.res}, features {args.features}: {total:.1f} s ({steps})")
    print(report["verdict"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=("cxr", "synthetic"), default="cxr")
    parser.add_argument("--features", default="pixels")
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs=3, metavar=("TRAINING", "HELD_OUT", "NOVEL"))
    parser.add_argument("-n", type=int, default=None, help="generated images per row (default: all novel images)")
    parser.add_argument("--q", type=float, default=0.01)
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="also pool the table over this many random splits (seeds)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--timing", type=int, metavar="N", help="time a whole audit of N samples instead")
    args = parser.parse_args()
    timing(args) if args.timing else calibrate(args)


if __name__ == "__main__":
    main()
