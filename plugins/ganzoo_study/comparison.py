"""Table 5: several models, the same real statistics, the same sample count, intervals over seeds.

Every model is scored against one real image set (its features cached) with the same
number of generated images; the spread comes from K generation seeds and, when asked,
from T training seeds (one run per seed from a config file).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2

from ganzoo.api import Executor, GanzooError, logger, read_config, real_images_for, resolve_checkpoint

from .common import fmt, load_base, markdown_table, summarize, write_csv, write_json
from .plots import labelled_row
from .scores import check_metrics, extras_text, floor_images, measured_extras, real_reference, real_vs_real, sample_grid, score_seeds, summarize_metric
from .sweeps import Run, resolve_executor, train_runs

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


def _name(item: str, taken: set[str]) -> str:
    path = Path(item)
    name = path.stem if path.suffix in CONFIG_SUFFIXES else (path.parent.name if path.name in ("last", "best") else path.name)
    while name in taken:
        name += "'"
    taken.add(name)
    return name


def resolve_models(items: Sequence[str], out: Path, train_seeds: int = 1, overrides: Mapping[str, Any] | None = None,
                   executor: Executor | None = None) -> dict[str, list[Path]]:
    """{model name: [checkpoint per training seed]}: config files are trained (resumably, all of them
    on `executor` at once), checkpoints read."""
    read: dict[str, list[Path]] = {}
    seeds: dict[str, list[Run]] = {}
    taken: set[str] = set()
    names = []
    for item in items:
        name = _name(item, taken)
        names.append(name)
        if Path(item).suffix in CONFIG_SUFFIXES:
            base = {**load_base(item), **(overrides or {})}
            base.pop("resume", None)
            base.pop("out", None)
            first_seed = int(base.get("seed", 0))
            seeds[name] = [Run(f"{name}-seed{first_seed + s}", {**base, "seed": first_seed + s}) for s in range(train_seeds)]
        else:
            if overrides:
                raise GanzooError(f"{item} is already trained: --set applies only to config files")
            read[name] = [resolve_checkpoint(item)]
    trained = train_runs([run for runs in seeds.values() for run in runs], out / "runs", executor) if seeds else {}
    return {name: read[name] if name in read else [trained[run.name] for run in seeds[name]] for name in names}


def compare(
    items: Sequence[str],
    out: str | Path,
    metrics: Sequence[str] = ("fid", "kid"),
    n: int | None = None,
    gen_seeds: int = 3,
    train_seeds: int = 1,
    data: str | None = None,
    label: str | None = None,
    max_real: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    executor: str | Executor = "local",
    executor_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score each model over `gen_seeds` generation seeds against one real set; writes results and a report to `out`.

    Config files are trained on `executor` (as in `sweep`); every score is computed here afterwards.
    """
    runner = resolve_executor(executor, executor_options)
    check_metrics(metrics)
    if len(items) < 1 or gen_seeds < 1 or train_seeds < 1:
        raise GanzooError("compare needs at least one model, gen seeds >= 1 and train seeds >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = resolve_models(items, out, train_seeds, overrides, runner)
    configs = {name: read_config(paths[0]) for name, paths in models.items()}
    resolutions = {name: c["model_args"]["resolution"] for name, c in configs.items()}
    if len(set(resolutions.values())) > 1:
        raise GanzooError(f"models differ in resolution ({resolutions}): their metrics would use different real statistics")
    first = next(iter(configs.values()))
    real = real_images_for(first, data=data, label=label, max_images=max_real)
    results: dict[str, Any] = {}
    for name, checkpoints in models.items():
        per_train = []
        for t, checkpoint in enumerate(checkpoints):
            logger.info("compare: %s (training seed %d), %d generation seed(s)", name, t, gen_seeds)
            reports = score_seeds(checkpoint, real, metrics, n, gen_seeds, device)
            per_train.append({"checkpoint": str(checkpoint), "metrics": {m: summarize_metric(reports, m) for m in metrics}})
        entry: dict[str, Any] = {"runs": per_train, "over_generation_seeds": {m: per_train[0]["metrics"][m] for m in metrics}}
        if len(per_train) > 1:
            entry["over_training_seeds"] = {m: summarize([p["metrics"][m]["mean"] for p in per_train]) for m in metrics}
        results[name] = entry
    baseline = real_vs_real(real, metrics, n or len(real), device, out / "evals", floor_images(first, real))
    grids = [sample_grid(Path(paths[0]), out / "grids" / f"{name}.png") for name, paths in models.items()]
    labelled_row(out / "samples-side-by-side.png", [cv2.imread(str(g)) for g in grids], list(models))
    report = {
        "models": results,
        "baseline_real_vs_real": baseline,
        "real": real.describe() | {"n": len(real)},
        "n_fake": n or len(real),
        "gen_seeds": gen_seeds,
        "train_seeds": train_seeds,
        "metrics": list(metrics),
        "command": shlex.join(["ganzoo", "compare", *items, "--metrics", ",".join(metrics), "--gen-seeds", str(gen_seeds),
                               "--train-seeds", str(train_seeds), "--out", str(out)] + (["-n", str(n)] if n else [])
                              + (["--data", data] if data else []) + (["--label", label] if label else [])
                              + (["--max-real", str(max_real)] if max_real else [])
                              + [a for k, v in (overrides or {}).items() for a in ("--set", f"{k}={v}")]),
    }
    write_json(out / "results.json", report)
    rows = []
    for name, entry in results.items():
        for t, run in enumerate(entry["runs"]):
            for m in metrics:
                for s, value in enumerate(run["metrics"][m]["values"]):
                    extras = {k: v[s] for k, v in run["metrics"][m].get("extra_values", {}).items()}
                    rows.append({"model": name, "training_seed": t, "generation_seed": s, "metric": m, "value": value, **extras,
                                 "n_fake": run["metrics"][m]["n_fake"], "n_real": run["metrics"][m]["n_real"], "checkpoint": run["checkpoint"]})
    write_csv(out / "results.csv", rows)
    (out / "report.md").write_text(compare_markdown(report), encoding="utf-8")
    return report


def compare_markdown(report: Mapping[str, Any]) -> str:
    """Table 5: mean and 95% t-interval per metric, the real-vs-real floor, the grids."""
    metrics = report["metrics"]
    first = " (training seed 0)" if report["train_seeds"] > 1 else ""
    header = ["model"] + [c for m in metrics for c in (f"{m} mean{first}", f"{m} 95% CI (gen seeds){first}")]
    if report["train_seeds"] > 1:
        header += [f"{m} mean [95% CI] over training seeds" for m in metrics]
    with_extras = [m for m in metrics if any(e["over_generation_seeds"][m].get("extras") for e in report["models"].values())]
    header += [f"{m} extras (mean{first})" for m in with_extras]
    rows = []
    for name, entry in report["models"].items():
        cells: list[Any] = [name]
        for m in metrics:
            g = entry["over_generation_seeds"][m]
            cells += [fmt(g["mean"]), f"[{fmt(g.get('low'))}, {fmt(g.get('high'))}]" if g["n"] > 1 else "n/a (1 seed)"]
        if report["train_seeds"] > 1:
            for m in metrics:
                t = entry["over_training_seeds"][m]
                cells.append(f"{fmt(t['mean'])} [{fmt(t['low'])}, {fmt(t['high'])}]")
        cells += [extras_text(entry["over_generation_seeds"][m].get("extras", {})) for m in with_extras]
        rows.append(cells)
    base = report["baseline_real_vs_real"]
    lines = [
        "# Model comparison", "",
        real_reference(report["real"]) + " "
        f"{report['n_fake']} generated images per score; {report['gen_seeds']} generation seed(s)"
        + (f", {report['train_seeds']} training seeds" if report["train_seeds"] > 1 else "") + ". Intervals: 95% Student t.",
        "",
        markdown_table(header, rows),
        "",
        "Real vs real at the same counts (the floor a perfect model reaches here): "
        + (", ".join(f"{m} {fmt(v['value'])} ({_baseline_extras(v)}{v['n_held_out']} vs {v['n_real']} images)" for m, v in base.items()) or "n/a"),
        "",
        "![samples](samples-side-by-side.png)",
        "",
        "## Reproduce", "", "```sh", report["command"], "```", "",
    ]
    if "fid" in metrics and report["n_fake"] < 2048:
        lines.insert(4, "FID below 2048 images per side is biased and sample-size dependent: compare models only at these equal counts and read KID too.\n")
    return "\n".join(lines)


def _baseline_extras(result: Mapping[str, Any]) -> str:
    text = extras_text({k: v[0] for k, v in measured_extras([result]).items()})
    return f"{text}; " if text else ""
