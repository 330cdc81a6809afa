"""Starting and resuming runs: `train()`, and what may change when a run is resumed."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import CONFIG_FILE, check_plugins, find_resume_checkpoint, has_checkpoint
from .config import TrainConfig, flag_name, resumable_options
from .console import logger
from .errors import GanzooError
from .loss_window import LOSS_CURVE_FILE
from .trainer import Trainer


def resume_config(config: TrainConfig) -> tuple[TrainConfig, Path]:
    """The saved run's config with the options the user gave that may change (e.g. more epochs).

    An option given explicitly counts even when it equals its default (`--precision fp32` on
    a bf16 run); one that may not change on resume is refused by name.
    """
    checkpoint = find_resume_checkpoint(config.resume)
    recorded = json.loads((checkpoint / CONFIG_FILE).read_text())
    check_plugins(recorded)
    saved = recorded["training"]
    saved.pop("batch_size_used", None)
    saved.setdefault("ema_start", 0)  # runs saved before --ema-start existed averaged from the first step
    values = config.to_dict()
    if config.given is None:
        defaults = TrainConfig().to_dict()
        given = {key for key, value in values.items() if value != defaults[key]}
    else:
        given = set(config.given)
    saved_values = TrainConfig.from_dict(saved, source=str(checkpoint / CONFIG_FILE)).to_dict()
    overrides = {}
    resumable = resumable_options()
    for key in sorted(given - {"resume", "out"}):
        if same_value(key, values[key], saved_values.get(key)):
            continue
        if key not in resumable:
            raise GanzooError(
                f"--{flag_name(key)} cannot change on --resume (saved: {saved_values.get(key)!r}, given: {values[key]!r}); "
                "start a new run with another --out to change it"
            )
        overrides[key] = values[key]
    if "epochs" in overrides:
        saved_values["steps"] = None
    if "steps" in overrides:
        saved_values["epochs"] = None
    merged = TrainConfig.from_dict({**saved_values, **overrides, "resume": None})
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return replace(merged, out=str(run_dir)), checkpoint


def same_value(key: str, given: Any, saved: Any) -> bool:
    """Equal options; a folder or file spelled another way (relative, ~) is the same one."""
    if given == saved:
        return True
    if key in ("data", "split") and isinstance(given, str) and isinstance(saved, str):
        return Path(given).expanduser().resolve() == Path(saved).expanduser().resolve()
    return False


def check_same_data(trainer: Trainer, checkpoint: Path) -> None:
    """Refuse to resume on other images than the run trained on, unless `resume_anyway`."""
    saved = json.loads((checkpoint / CONFIG_FILE).read_text()).get("dataset", {}).get("fingerprint")
    if saved is None or saved == trainer.data.fingerprint:
        return
    if not trainer.config.resume_anyway:
        raise GanzooError(
            f"the dataset changed since {checkpoint} was saved (fingerprint {saved}, now {trainer.data.fingerprint}): "
            "files were added, removed or edited, so resuming would not continue the same run; "
            "restore the data, start a new run, or pass --resume-anyway"
        )
    logger.warning("dataset fingerprint changed (%s -> %s); resuming anyway as asked", saved, trainer.data.fingerprint)


RUN_FILES = ("checkpoints", "best", "samples", "last", "log.jsonl", LOSS_CURVE_FILE)


def claim_run_dir(out: Path, overwrite: bool) -> None:
    """A new run never lands inside an earlier one: refused, or (`overwrite`) the earlier run's
    files are removed first; anything else in the directory is left alone."""
    found = run_files_in(out)
    if not found:
        return
    if not overwrite:
        raise GanzooError(
            f"{out} already holds a run ({', '.join(found)}): continue it with --resume {out}, "
            "choose a new --out, or pass --overwrite to start over"
        )
    logger.warning("--overwrite: removing the earlier run's %s from %s", ", ".join(found), out)
    remove_run_files(out, found)


def run_files_in(out: Path) -> list[str]:
    return [name for name in RUN_FILES if (out / name).exists() or (out / name).is_symlink()]


def remove_run_files(out: Path, found: list[str]) -> None:
    for name in found:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def clear_unfinished_start(out: Path) -> None:
    """A run killed before its first checkpoint left only its log, samples or a half-written
    checkpoint: nothing can resume from them, so `--resume auto` starts that run over."""
    found = run_files_in(out)
    if found and not {"best", "last"} & set(found):
        logger.warning("%s holds an unfinished start (%s) and no checkpoint: starting it over", out, ", ".join(found))
        remove_run_files(out, found)


def train(
    config: TrainConfig | dict[str, Any], on_progress: Callable[[dict[str, Any]], None] | None = None, quiet: bool = False
) -> Path:
    """Train (or resume) a GAN; returns the final checkpoint directory.

    Progress goes to `on_progress(record)` when given (each log record: step, epoch, losses,
    images/s), else to stderr (a bar on a terminal, a plain line every 30 s otherwise);
    `quiet=True` prints neither progress nor the closing summary.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    checkpoint = None
    if config.resume == "auto":
        if not config.out:
            raise GanzooError("--resume auto needs --out RUN_DIR (the run to continue, or to start)")
        if has_checkpoint(Path(config.out)):
            config = replace(config, resume=config.out)
        else:
            logger.info("no checkpoint in %s yet: starting a new run", config.out)
            clear_unfinished_start(Path(config.out))
            config = replace(config, resume=None)
    if config.resume:
        config, checkpoint = resume_config(config)
    elif config.out:
        claim_run_dir(Path(config.out), config.overwrite)
    trainer = Trainer(config)
    if checkpoint is not None:
        check_same_data(trainer, checkpoint)
        trainer.load_state(checkpoint)
        if trainer.step >= trainer.total_steps:
            logger.info(
                "nothing to do: %s is already at step %d of %d; give more --epochs or --steps to train longer",
                trainer.out, trainer.step, trainer.total_steps,
            )
            return checkpoint
        logger.info("resumed from %s at step %d", checkpoint, trainer.step)
    try:
        return trainer.fit(on_progress=on_progress, quiet=quiet)
    finally:
        if trainer.shard.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
