"""Running a batch of named trainings: the contract every executor plugin implements.

A study (`sweep`, `compare`) hands an executor the trainings it still needs and gets back,
per name, the final checkpoint or why that training failed; scoring stays in the caller's
process, so results do not depend on where the trainings ran. A task always continues its
run directory's last checkpoint (`--resume auto`): a rerun, a requeued SLURM job or a
retried Ray task picks up where the previous attempt stopped.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import GanzooError
from .plugins import registry
from .runs import train


@dataclass(frozen=True)
class TrainTask:
    """One named training: TrainConfig keys, with `out` its own run directory."""

    name: str
    config: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.config.get("out"):
            raise GanzooError(f"training task {self.name!r} has no run directory (`out`)")

    @property
    def out(self) -> Path:
        return Path(self.config["out"])


@dataclass
class TaskResult:
    """How one task ended: its final checkpoint, or a one-line `error`; `log` is where its
    output went (when it ran elsewhere) and `stats` what the executor measured (seconds, memory)."""

    name: str
    checkpoint: Path | None = None
    error: str | None = None
    log: Path | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.checkpoint is not None


class Executor:
    """Runs trainings. Subclass it, take your options as keyword arguments of `__init__`
    (annotated int, float, bool, str or list[str]; `build_executor` checks them), and
    implement `run`. `run` returns one TaskResult per task, a failed task included: one
    failure must not stop the others."""

    description: str = ""

    def run(self, tasks: Sequence[TrainTask], logs: Path) -> dict[str, TaskResult]:
        """Train every task; `logs` is a directory for whatever the executor writes besides the runs."""
        raise NotImplementedError


def run_task(task: TrainTask, threads: int | None = None, on_progress: Callable[[dict[str, Any]], None] | None = None, quiet: bool = True) -> Path:
    """Train one task in this process, continuing its last checkpoint if it has one.

    `threads` fixes torch's CPU threads: on a CPU the floats depend on it, so an executor
    that runs tasks in other processes passes the caller's count to reproduce its results.
    """
    if threads:
        torch.set_num_threads(threads)
    return train({**task.config, "resume": "auto"}, on_progress=on_progress, quiet=quiet)


def build_executor(name: str, **options: Any) -> Executor:
    """The registered executor `name` with `options` (None means not given); an option it does
    not take, or of the wrong type, is one clear error naming the executor and the option."""
    cls = registry("executors").get(name)
    parameters = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # a plugin's unresolvable annotation: no type checks
        hints = {}
    values = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in parameters:
            raise GanzooError(f"executor {name!r} has no option {key!r}; it takes: {', '.join(parameters) or 'none'}")
        values[key] = _typed(name, key, value, hints.get(key))
    return cls(**values)


def _typed(executor: str, key: str, value: Any, hint: Any) -> Any:
    """`value` as its annotation (Optional[...] unwrapped); text from `--executor-arg` is converted."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is list:
        items = [value] if isinstance(value, str) else value  # one `--executor-arg` text is one item
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise GanzooError(f"executor {executor!r} option {key} must be a list of strings, got {value!r}")
        return list(items)
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
    elif hint in (int, float):
        try:
            number = hint(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        ok = isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)
        if ok and (hint is float or isinstance(number, int)):
            return hint(number)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]
    raise GanzooError(f"executor {executor!r} option {key} must be {expected}, got {value!r}")
