"""`ganzoo sweep|compare|classify|augment`: thin Typer wrappers over the study functions.

The study modules are imported when a command runs, so registering the commands stays cheap.
A GanzooError becomes one line on stderr in the CLI's root group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganzoo.api import GanzooError, console


def _metrics(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise GanzooError("--metrics needs at least one name, e.g. fid,kid")
    return names


# Where the trainings of sweep and compare run (docs/scaling.md); each flag is an option of one executor.
Exec = Annotated[str, typer.Option("--executor", help="Where trainings run: local, submitit, ray, or a plugin's (`ganzoo list executors`).")]
Parallel = Annotated[Optional[int], typer.Option(help="local: trainings at once, each in its own process. (default: 1, one after another here)")]
Gpus = Annotated[Optional[str], typer.Option(help="local: GPU ids for those processes, e.g. 0,1 (round-robin; several runs may share one).")]
SlurmPartition = Annotated[Optional[str], typer.Option(help="submitit: SLURM partition.")]
SlurmTime = Annotated[Optional[str], typer.Option(help="submitit: time limit per job, minutes or [D-]HH:MM:SS; a run that hits it is requeued. (default: 60)")]
SlurmGpus = Annotated[Optional[int], typer.Option(help="submitit: GPUs per job.")]
SlurmArray = Annotated[Optional[int], typer.Option(help="submitit: jobs of the array running at once. (default: 256)")]
SlurmSetup = Annotated[Optional[list[str]], typer.Option(help="submitit: shell line run before each job, e.g. 'module load cuda' (repeatable).")]
RayAddress = Annotated[Optional[str], typer.Option(help="ray: address of a Ray cluster to join. (default: start Ray on this machine)")]
RayGpus = Annotated[Optional[float], typer.Option(help="ray: GPU share per run, e.g. 0.25 puts four runs on a GPU. (default: 0)")]
ExecutorArg = Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE: any other option of the executor, e.g. slurm_cluster=local or slurm_sbatch=account=lab (repeatable; a key given twice is a list).")]


EXECUTOR_FLAGS = ("parallel", "gpus", "slurm_partition", "slurm_time", "slurm_gpus_per_task", "slurm_array_parallelism", "slurm_setup",
                  "ray_address", "ray_gpus_per_run")


def _executor_options(given: dict[str, Any]) -> dict[str, Any]:
    """The executor options in a command's arguments: the flags that were set, then each --executor-arg."""
    options = {k: given[k] for k in EXECUTOR_FLAGS if given[k] is not None}
    for item in given["executor_arg"] or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GanzooError(f"--executor-arg must be KEY=VALUE, got {item!r}")
        name = key.strip().replace("-", "_")
        if name in options:  # given twice: a list (what slurm_setup and slurm_sbatch take)
            earlier = options[name]
            options[name] = [*(earlier if isinstance(earlier, list) else [earlier]), value]
        else:
            options[name] = value
    return options


def _done(out: Path) -> None:
    console.print(f"wrote {out / 'report.md'}, {out / 'results.csv'} and {out / 'results.json'}", highlight=False)


def sweep(
    vary: Annotated[list[str], typer.Option(help="KEY=V1,V2,... (repeatable), e.g. images=1000,2000,3000 or epochs=50,100,300.")],
    out: Annotated[Path, typer.Option(help="Output directory (runs, evaluations, report); rerun to resume.")],
    config: Annotated[Optional[Path], typer.Option(help="Base training config (TOML/YAML, keys as `ganzoo train`).")] = None,
    mode: Annotated[str, typer.Option(help="one-at-a-time (vary each key from the base) or grid (all combinations).")] = "one-at-a-time",
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics.")] = "fid,kid",
    eval_n: Annotated[Optional[int], typer.Option(help="Generated images per score. (default: as many as real images)")] = None,
    eval_seeds: Annotated[int, typer.Option(help="Generation seeds per score (mean +/- std).")] = 1,
    max_real: Annotated[Optional[int], typer.Option(help="Use at most N real images as the reference.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    executor: Exec = "local",
    parallel: Parallel = None,
    gpus: Gpus = None,
    slurm_partition: SlurmPartition = None,
    slurm_time: SlurmTime = None,
    slurm_gpus_per_task: SlurmGpus = None,
    slurm_array_parallelism: SlurmArray = None,
    slurm_setup: SlurmSetup = None,
    ray_address: RayAddress = None,
    ray_gpus_per_run: RayGpus = None,
    executor_arg: ExecutorArg = None,
) -> None:
    """Train one run per setting, score each, and write tables, plots, grids and commands (Tables 1-4)."""
    from .common import parse_vary
    from .sweeps import sweep as run_sweep

    run_sweep(config, parse_vary(vary), out, mode=mode, metrics=_metrics(metrics), eval_n=eval_n, eval_seeds=eval_seeds, max_real=max_real, device=device,
              executor=executor, executor_options=_executor_options(locals()))
    _done(out)


def compare(
    models: Annotated[list[str], typer.Argument(help="Run/checkpoint directories (read) or config files (trained).")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics.")] = "fid,kid",
    n: Annotated[Optional[int], typer.Option("-n", "--n", help="Generated images per score. (default: as many as real images)")] = None,
    gen_seeds: Annotated[int, typer.Option(help="Generation seeds per model (K).")] = 3,
    train_seeds: Annotated[int, typer.Option(help="Training seeds per config file (T).")] = 1,
    data: Annotated[Optional[str], typer.Option(help="Real images (default: the first model's training data).")] = None,
    label: Annotated[Optional[str], typer.Option(help="Only real images with this label.")] = None,
    max_real: Annotated[Optional[int], typer.Option(help="Use at most N real images.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE applied to every config file (same data and budget).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    executor: Exec = "local",
    parallel: Parallel = None,
    gpus: Gpus = None,
    slurm_partition: SlurmPartition = None,
    slurm_time: SlurmTime = None,
    slurm_gpus_per_task: SlurmGpus = None,
    slurm_array_parallelism: SlurmArray = None,
    slurm_setup: SlurmSetup = None,
    ray_address: RayAddress = None,
    ray_gpus_per_run: RayGpus = None,
    executor_arg: ExecutorArg = None,
) -> None:
    """Score several models with the same real statistics and sample count, with 95% intervals (Table 5)."""
    from .common import parse_value
    from .comparison import compare as run_compare

    overrides = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise GanzooError(f"--set must be KEY=VALUE, got {item!r}")
        overrides[key.replace("-", "_")] = parse_value(key, value)
    run_compare(models, out, metrics=_metrics(metrics), n=n, gen_seeds=gen_seeds, train_seeds=train_seeds, data=data, label=label,
                max_real=max_real, overrides=overrides, device=device, executor=executor, executor_options=_executor_options(locals()))
    _done(out)


def classify(
    data: Annotated[str, typer.Option(help="Labelled real images (metadata.csv or class subfolders).")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    positive: Annotated[str, typer.Option(help="The positive class, e.g. covid; every other label is negative.")],
    label_column: Annotated[str, typer.Option(help="Label column of metadata.csv.")] = "label",
    synthetic: Annotated[Optional[list[str]], typer.Option(help="Folder of synthetic positive images (repeatable; one setting each).")] = None,
    model: Annotated[str, typer.Option(help="resnet18, densenet121 or densenet161.")] = "resnet18",
    weights: Annotated[Optional[Path], typer.Option(help="Local pretrained weights (.safetensors). (default: from scratch)")] = None,
    seeds: Annotated[int, typer.Option(help="Training seeds per setting (K).")] = 3,
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 10,
    res: Annotated[int, typer.Option(help="Image size.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 32,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    test_fraction: Annotated[float, typer.Option(help="Share of real images held out for testing, without a split file.")] = 0.2,
    split: Annotated[Optional[str], typer.Option(help="A `ganzoo split` file: its held-out part is the test split; none: draw one here.", show_default="DATA/ganzoo-split.json if present")] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/test split drawn without a split file.")] = 0,
    max_images: Annotated[Optional[int], typer.Option(help="Use a stratified subset of N real images.")] = None,
    synthetic_n: Annotated[Optional[int], typer.Option(help="Add at most N synthetic images per setting.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
) -> None:
    """Train a classifier with and without synthetic positives; test on held-out real images only (Table 6)."""
    from .classifier import classify as run_classify

    run_classify(data, out, label_column=label_column, positive=positive, synthetic=synthetic or [], model=model, seeds=seeds, epochs=epochs,
                 res=res, batch_size=batch_size, lr=lr, device=device, weights=weights, test_fraction=test_fraction, split_seed=split_seed,
                 max_images=max_images, synthetic_n=synthetic_n, split_file=split)
    _done(out)


def augment(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint or run directory trained on the LABEL images of DATA.")],
    data: Annotated[str, typer.Option(help="Labelled real images (metadata.csv or class subfolders).")],
    label: Annotated[str, typer.Option(help="Class to top up with synthetic images.")],
    to_count: Annotated[int, typer.Option(help="Total images of LABEL after augmentation.")],
    out: Annotated[Path, typer.Option(help="New, empty output directory.")],
    label_column: Annotated[str, typer.Option(help="Label column of metadata.csv.")] = "label",
    copy: Annotated[bool, typer.Option("--copy/--link", help="Copy real files instead of symlinking them.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated images.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    allow_mismatch: Annotated[bool, typer.Option(help="Add the images even though the checkpoint was not trained on LABEL images of DATA.")] = False,
    audit: Annotated[Optional[Path], typer.Option(help="The model's `ganzoo audit` output directory. (default: the latest audit recorded for these weights)")] = None,
) -> None:
    """Write a rebalanced copy of a labelled dataset; a manifest marks every synthetic file."""
    from .rebalance import augment as run_augment

    manifest = run_augment(checkpoint, data, label, to_count, out, label_column=label_column, mode="copy" if copy else "link", seed=seed, device=device,
                           allow_mismatch=allow_mismatch, audit=audit)
    counts = ", ".join(f"{k}: {v['real']} real + {v['synthetic']} synthetic" for k, v in manifest["counts"].items())
    console.print(f"wrote {out} ({counts}); manifest: {out / 'manifest.json'}", highlight=False)


def register(app: typer.Typer) -> None:
    for command in (sweep, compare, classify, augment):
        app.command(command.__name__)(command)
