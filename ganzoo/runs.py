"""Starting and resuming runs: `train()`, and what may change when a run is resumed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CONFIG_FILE, find_resume_checkpoint, has_checkpoint
from .config import TrainConfig, flag_name, resumable_options
from .console import logger
from .errors import GanzooError
from .trainer import Trainer


def resume_config(config: TrainConfig) -> tuple[TrainConfig, Path]:
    """The saved run's config with the options the user gave that may change (e.g. more epochs).

    An option given explicitly counts even when it equals its default (`--precision fp32` on
    a bf16 run); one that may not change on resume is refused by name.
    """
    checkpoint = find_resume_checkpoint(config.resume)
    saved = json.loads((checkpoint / CONFIG_FILE).read_text())["training"]
    saved.pop("batch_size_used", None)
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
        if values[key] == saved_values.get(key):
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


def train(config: TrainConfig | dict[str, Any]) -> Path:
    """Train (or resume) a GAN; returns the final checkpoint directory."""
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    checkpoint = None
    if config.resume == "auto":
        if not config.out:
            raise GanzooError("--resume auto needs --out RUN_DIR (the run to continue, or to start)")
        if not has_checkpoint(Path(config.out)):
            logger.info("no checkpoint in %s yet: starting a new run", config.out)
        config = replace(config, resume=config.out if has_checkpoint(Path(config.out)) else None)
    if config.resume:
        config, checkpoint = resume_config(config)
    trainer = Trainer(config)
    if checkpoint is not None:
        check_same_data(trainer, checkpoint)
        trainer.load_state(checkpoint)
        logger.info("resumed from %s at step %d", checkpoint, trainer.step)
    try:
        return trainer.fit()
    finally:
        if trainer.shard.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
