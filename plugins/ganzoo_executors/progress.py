"""One progress view for a batch of runs, wherever they train.

Each bar is fed by the step records the run itself appends to `RUN/log.jsonl`, so the view
needs no channel to the worker: it works for worker processes, SLURM jobs and Ray tasks
alike (on other machines, when the run directories are on a shared file system). Off a
terminal the bars are off and each start and end is one log line.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from rich.progress import TextColumn

from ganzoo.api import DEFAULT_EPOCHS, TaskResult, TrainTask, logger, progress

TAIL_BYTES = 8192


def last_step(log: Path) -> dict[str, Any] | None:
    """The newest training record (step, epoch, ...) of a run's log.jsonl, reading only its end."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by the tail or still being written
        if isinstance(record, dict) and "step" in record and "epoch" in record and "images_per_s" in record:
            return record
    return None


def total_steps(config: dict[str, Any], record: dict[str, Any]) -> int | None:
    """The run's length in steps, from its config and a record's step/epoch ratio."""
    if config.get("steps"):
        return int(config["steps"])
    if record.get("epoch"):
        return round((config.get("epochs") or DEFAULT_EPOCHS) * record["step"] / record["epoch"])
    return None


class RunsView:
    """A bar per run (status, step of total, images/s), updated by `refresh()`."""

    def __init__(self, tasks: Sequence[TrainTask]) -> None:
        self.tasks = {task.name: task for task in tasks}
        self.bar = progress(TextColumn("{task.fields[status]}"))
        self.ids: dict[str, Any] = {}
        self.running: set[str] = set()
        self.totals: dict[str, int | None] = {}

    def __enter__(self) -> RunsView:
        self.bar.__enter__()
        self.ids = {name: self.bar.add_task(name, total=None, start=False, status="waiting") for name in self.tasks}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.bar.__exit__(kind, error, trace)

    def started(self, name: str, where: str = "") -> None:
        self.running.add(name)
        self.bar.start_task(self.ids[name])  # its clock starts now, not while it waited
        self.bar.update(self.ids[name], status=f"running{' on ' + where if where else ''}")
        logger.info("started %s%s", name, f" on {where}" if where else "")

    def refresh(self) -> None:
        for name in self.running:
            record = last_step(self.tasks[name].out / "log.jsonl")
            if record is not None:
                total = self.totals[name] = total_steps(self.tasks[name].config, record)
                status = f"{record['images_per_s']:.0f} img/s"
                self.bar.update(self.ids[name], completed=record["step"], total=total, status=status)

    def finished(self, result: TaskResult) -> None:
        self.running.discard(result.name)
        if result.ok:
            total = self.totals.get(result.name) or 1
            self.bar.update(self.ids[result.name], completed=total, total=total, status="done")
            logger.info("finished %s", result.name)
        else:
            self.bar.update(self.ids[result.name], status="FAILED")
            logger.warning("%s failed: %s%s", result.name, result.error, f" (log: {result.log})" if result.log else "")
