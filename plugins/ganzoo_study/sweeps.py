"""Tables 1-4: train one run per setting of a base configuration, score each, write a report.

Runs live in `out/runs/<name>`; a run with `done.json` matching its configuration is never
retrained, a half-trained one is resumed, and each evaluation is cached in `out/evals/`, so
an interrupted sweep picks up where it stopped. Varying `epochs` trains one run to the
largest value with a checkpoint every gcd(values) epochs and scores those checkpoints:
the epoch rows are points on one training curve, not separate runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shlex
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any, Mapping, Sequence

from ganzoo.api import DEFAULT_EPOCHS, Executor, GanzooError, TaskResult, TrainConfig, TrainTask, build_executor, logger, read_config

from .common import explicit, fmt, load_base, markdown_table, toml_text, train_command, write_csv, write_json
from .plots import line_plot
from .scores import check_metrics, evaluate_checkpoint, extras_text, real_reference, sample_grid

MODES = ("one-at-a-time", "grid")


@dataclass
class Run:
    """One training run of the sweep and the epoch points to score (None: its final checkpoint)."""

    name: str
    config: dict[str, Any]
    epochs_points: list[int] | None = None


@dataclass
class Row:
    """One line of a table: which parameter(s), at which value(s), scored from which run."""

    table: str
    setting: dict[str, Any]
    run: str
    epoch: int | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.run + (f"@epoch{self.epoch}" if self.epoch is not None else "")


def run_name(overrides: Mapping[str, Any]) -> str:
    if not overrides:
        return "base"
    return "__".join(f"{k}={v}" for k, v in sorted(overrides.items())).replace("/", "_")


def plan(base: Mapping[str, Any], vary: Mapping[str, Sequence[Any]], mode: str = "one-at-a-time") -> tuple[list[Run], list[Row]]:
    """The runs to train and the table rows to score, without training anything."""
    if mode not in MODES:
        raise GanzooError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not vary or any(not values for values in vary.values()):
        raise GanzooError("give at least one --vary KEY=V1,V2,...")
    for key in ("out", "resume"):
        if key in vary:
            raise GanzooError(f"--vary {key} is not a training parameter")
    epochs = sorted(set(vary["epochs"])) if "epochs" in vary else None
    others = {k: list(dict.fromkeys(v)) for k, v in vary.items() if k != "epochs"}
    effective = TrainConfig.from_dict(base, source="base config").to_dict()
    runs: dict[str, Run] = {}

    def add(overrides: dict[str, Any], curve: bool, also_at: int | None = None) -> Run:
        overrides = {k: v for k, v in overrides.items() if k not in effective or effective[k] != v}  # the base's own value is the base
        config = {**base, **overrides}
        if curve and epochs is not None:
            points = sorted({*epochs, *([also_at] if also_at else [])})
            step = reduce(math.gcd, points)
            config.update(epochs=max(points), steps=None, checkpoint_every=step, keep_checkpoints=max(points) // step + 2)
        name = run_name(overrides) + ("__epochs" if curve else "")
        return runs.setdefault(name, Run(name, config, epochs if curve else None))

    rows: list[Row] = []
    if mode == "grid":
        keys = list(others)
        for combo in itertools.product(*(others[k] for k in keys)):
            run = add(dict(zip(keys, combo)), curve=epochs is not None)
            for epoch in epochs or [None]:
                setting = dict(zip(keys, combo)) | ({"epochs": epoch} if epoch is not None else {})
                rows.append(Row("grid", setting, run.name, epoch))
    else:
        # With an epochs curve, a setting equal to the base is scored on the curve at the base's
        # epochs instead of being trained a second time.
        base_epochs = effective["epochs"] or (DEFAULT_EPOCHS if effective["steps"] is None else None)
        on_curve = []
        for key, values in others.items():
            for value in values:
                if epochs is not None and base_epochs is not None and key in effective and effective[key] == value:
                    on_curve.append(Row(key, {key: value}, "", base_epochs))
                    rows.append(on_curve[-1])
                    continue
                run = add({key: value}, curve=False)
                rows.append(Row(key, {key: value}, run.name))
        if epochs is not None:
            run = add({}, curve=True, also_at=base_epochs if on_curve else None)
            for row in on_curve:
                row.run = run.name
            rows += [Row("epochs", {"epochs": e}, run.name, e) for e in epochs]
    for run in runs.values():
        TrainConfig.from_dict({k: v for k, v in run.config.items()}, source=f"sweep run {run.name}")
    return list(runs.values()), rows


def train_runs(runs: Sequence[Run], runs_dir: Path, executor: Executor | None = None) -> dict[str, Path]:
    """{run name: final checkpoint}. Runs whose `done.json` says this exact configuration finished
    are skipped; the others go to `executor` (default: local, one after another in this process),
    which resumes a partial one. A failed run fails the call, naming each, after every other
    run finished (those are marked done, so a rerun retries only the failed ones)."""
    checkpoints: dict[str, Path] = {}
    tasks = []
    for run in runs:
        directory = runs_dir / run.name
        config = {**run.config, "out": str(directory)}
        done = directory / "done.json"
        if done.exists():
            saved = json.loads(done.read_text())
            if saved["config"] != explicit(config):
                raise GanzooError(f"{directory} was trained with another configuration; use a new --out")
            logger.info("%s already trained, skipped", run.name)
            checkpoints[run.name] = Path(saved["checkpoint"])
        else:
            tasks.append(TrainTask(run.name, config))
    if not tasks:
        return checkpoints
    results = (executor or build_executor("local")).run(tasks, runs_dir.parent / "logs")
    for task in tasks:
        result = results.get(task.name)
        if result is not None and result.ok:
            write_json(task.out / "done.json", {"config": explicit(task.config), "checkpoint": str(result.checkpoint)})
            checkpoints[task.name] = Path(result.checkpoint)
    failed = [results.get(t.name) or TaskResult(t.name, error="the executor returned no result") for t in tasks if t.name not in checkpoints]
    if failed:
        what = "; ".join(f"{r.name}: {r.error}" + (f" (log: {r.log})" if r.log else "") for r in failed)
        raise GanzooError(f"{len(failed)} of {len(tasks)} training run(s) failed: {what}; rerun the same command to retry them")
    return checkpoints


def resolve_executor(executor: str | Executor, options: Mapping[str, Any] | None) -> Executor:
    """An executor object from a registered name and its options (checked before any training)."""
    if isinstance(executor, Executor):
        if options:
            raise GanzooError("executor options apply to an executor given by name, not to an Executor object")
        return executor
    return build_executor(executor, **(options or {}))


def epoch_checkpoint(run_dir: Path, epoch: int) -> Path:
    """The checkpoint of a run saved at exactly `epoch` completed epochs."""
    for candidate in sorted((run_dir / "checkpoints").glob("step-*")):
        progress = read_config(candidate).get("progress", {})
        if progress.get("epoch") == epoch and progress.get("step", 0) % max(1, progress.get("steps_per_epoch", 1)) == 0:
            return candidate
    raise GanzooError(f"{run_dir} has no checkpoint at epoch {epoch}; was it trained by this sweep?")


def sweep(
    base: str | Path | Mapping[str, Any] | None,
    vary: Mapping[str, Sequence[Any]],
    out: str | Path,
    mode: str = "one-at-a-time",
    metrics: Sequence[str] = ("fid", "kid"),
    eval_n: int | None = None,
    eval_seeds: int = 1,
    max_real: int | None = None,
    device: str = "auto",
    executor: str | Executor = "local",
    executor_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train every setting, score it, and write results.csv, results.json, report.md, plots and grids to `out`.

    The trainings run on `executor` (a registered name with `executor_options`, or an Executor);
    every score is computed here afterwards, so the results do not depend on where they trained.
    """
    runner = resolve_executor(executor, executor_options)
    check_metrics(metrics)
    if eval_seeds < 1:
        raise GanzooError(f"eval seeds must be >= 1, got {eval_seeds}")
    base_values = {k: v for k, v in load_base(base).items() if k not in ("out", "resume")}
    if device != "auto":
        base_values["device"] = device
    runs, rows = plan(base_values, vary, mode)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "base.toml").write_text(toml_text(explicit(base_values)), encoding="utf-8")
    checkpoints = train_runs(runs, out / "runs", runner)
    for row in rows:
        run_dir = out / "runs" / row.run
        checkpoint = epoch_checkpoint(run_dir, row.epoch) if row.epoch is not None else checkpoints[row.run]
        row.result = evaluate_checkpoint(checkpoint, metrics, eval_n, eval_seeds, max_real, device, out / "evals")
        row.result["grid"] = sample_grid(checkpoint, out / "grids" / f"{row.key}.png").relative_to(out).as_posix()
    vary_args = [f"{k}={','.join(str(v) for v in values)}" for k, values in vary.items()]
    command = ["ganzoo", "sweep", "--config", str(out / "base.toml")] + [a for v in vary_args for a in ("--vary", v)]
    command += ["--mode", mode, "--metrics", ",".join(metrics), "--eval-seeds", str(eval_seeds), "--out", str(out)]
    command += (["--eval-n", str(eval_n)] if eval_n else []) + (["--max-real", str(max_real)] if max_real else [])
    results = {
        "base": explicit(base_values),
        "vary": {k: list(v) for k, v in vary.items()},
        "mode": mode,
        "metrics": list(metrics),
        "eval_n": eval_n,
        "eval_seeds": eval_seeds,
        "command": shlex.join(command),
        "runs": {r.name: {"config": explicit(r.config), "checkpoint": str(checkpoints[r.name]),
                          "train_command": train_command({**r.config, "out": str(out / "runs" / r.name)})} for r in runs},
        "rows": [{"table": r.table, "setting": r.setting, "run": r.run, "epoch": r.epoch, **r.result} for r in rows],
    }
    write_json(out / "results.json", results)
    write_csv(out / "results.csv", [_flat(r, metrics) for r in results["rows"]])
    plots = _plots(results, out)
    (out / "report.md").write_text(sweep_markdown(results, plots), encoding="utf-8")
    return results


def _flat(row: Mapping[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    flat: dict[str, Any] = {"table": row["table"], **{f"param_{k}": v for k, v in row["setting"].items()}, "run": row["run"], "epoch": row["epoch"]}
    for name in metrics:
        m = row["metrics"][name]
        flat |= {name: m["mean"], f"{name}_std_over_seeds": m["std"], f"{name}_metric_std": m["metric_std"], f"{name}_seeds": m["seeds"],
                 f"{name}_n_fake": m["n_fake"], f"{name}_n_real": m["n_real"]}
        flat |= {f"{name}_{k}": v for k, v in m.get("extras", {}).items()}
        if name in row["baseline"]:
            flat[f"{name}_real_vs_real"] = row["baseline"][name]["value"]
    return flat


def _plots(results: Mapping[str, Any], out: Path) -> dict[str, list[str]]:
    """One PNG per (table, metric) in one-at-a-time mode; per (first parameter, metric) otherwise."""
    plots: dict[str, list[str]] = {}
    for table in dict.fromkeys(r["table"] for r in results["rows"]):
        rows = [r for r in results["rows"] if r["table"] == table]
        for param in rows[0]["setting"] if table == "grid" else [table]:
            fixed = {k: v for k, v in rows[0]["setting"].items() if k != param}
            line = [r for r in rows if all(r["setting"][k] == v for k, v in fixed.items())]
            xs = [r["setting"][param] for r in line]
            where = "".join(f", {k}={v}" for k, v in fixed.items())
            for name in results["metrics"]:
                ys = [r["metrics"][name]["mean"] for r in line]
                spread = [r["metrics"][name]["std"] if r["metrics"][name]["seeds"] > 1 else (r["metrics"][name]["metric_std"] or 0.0) for r in line]
                path = line_plot(out / "plots" / f"{param}-{name}.png", xs, ys, spread, f"{name} vs {param}{where}", param, name)
                plots.setdefault(table, []).append(path.relative_to(out).as_posix())
    return plots


def base_options(base: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(option, value, "base config" or "default") for every training option; `base` holds the explicit keys."""
    values = TrainConfig.from_dict(base, source="base config").to_dict()
    rows = []
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("internal"):
            continue
        value = values[f.name]
        shown = json.dumps(value) if isinstance(value, (list, dict)) else ("off" if value is None else str(value))
        if value is None and f.metadata.get("default_text"):
            shown = f.metadata["default_text"]
        rows.append((f.name, shown, "base config" if f.name in base else "default"))
    return rows


def sweep_markdown(results: Mapping[str, Any], plots: Mapping[str, list[str]]) -> str:
    """One table per varied parameter (the study's Tables 1-4), plots, grids and commands."""
    metrics = results["metrics"]
    k = results["eval_seeds"]
    lines = ["# Sweep report", ""]
    first = results["rows"][0]
    counts = ", ".join(f"{m}: {first['metrics'][m]['n_fake']} generated" + (f" vs {first['metrics'][m]['n_real']} real" if first["metrics"][m]["n_real"] else "")
                       for m in metrics)
    lines += [real_reference(first.get("real")), ""]
    lines += [f"Sample counts: {counts}. " + (f"Values are mean ± std over {k} generation seeds." if k > 1 else
              "One generation seed; ± is the metric's own spread where it has one (KID: over its subsets; FID has none).")
              + (" Measured extras (e.g. precision and recall) follow a metric's value in parentheses."
                 if any(first["metrics"][m].get("extras") for m in metrics) else "")]
    if "fid" in metrics and min(first["metrics"]["fid"]["n_fake"] or 0, first["metrics"]["fid"]["n_real"] or 0) < 2048:
        lines += ["", "FID from fewer than 2048 images per side is biased upwards and depends on the sample count: compare rows "
                  "only at equal counts, read KID next to it, and see the real-vs-real column (two disjoint real subsets at the same counts)."]
    for table in dict.fromkeys(r["table"] for r in results["rows"]):
        rows = [r for r in results["rows"] if r["table"] == table]
        params = list(rows[0]["setting"])
        header = [*params] + [c for m in metrics for c in (m, f"{m} real-vs-real")] + ["samples"]
        body = []
        for r in rows:
            cells: list[Any] = [r["setting"][p] for p in params]
            for m in metrics:
                v = r["metrics"][m]
                spread = v["std"] if v["seeds"] > 1 else v["metric_std"]
                extras = extras_text(v.get("extras", {}))
                cells.append(fmt(v["mean"]) + (f" ± {fmt(spread)}" if spread else "") + (f" ({extras})" if extras else ""))
                cells.append(fmt(r["baseline"].get(m, {}).get("value")))
            cells.append(f"[grid]({r['grid']})")
            body.append(cells)
        lines += ["", f"## {table}" + (" (one run, scored at each epoch)" if table == "epochs" else ""), "", markdown_table(header, body), ""]
        lines += [f"![{p}]({p})" for p in plots.get(table, [])]
    lines += ["", "## Base configuration", "", "Every training option of the base; each run changes only what its row names.", ""]
    lines += [markdown_table(["option", "value", "from"], base_options(results["base"])), ""]
    lines += ["", "## Reproduce", "", "```sh", results["command"], "```", "", "Each run alone:", "", "```sh"]
    lines += [r["train_command"] for r in results["runs"].values()]
    lines += ["```", ""]
    return "\n".join(lines)
