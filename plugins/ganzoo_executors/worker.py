"""`python -m ganzoo_executors.worker TASK.json`: one training in its own process (the local
executor's worker). The task file names the result file it writes; the exit code is 0 on
success, the trainer's 128 + signal when stopped by a signal, 1 otherwise."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from ganzoo.api import TrainingInterrupted, TrainTask, atomic_write_text, run_task

from .tasks import execute


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    task = TrainTask(spec["name"], spec["config"])
    try:
        outcome = execute(lambda: run_task(task, threads=spec.get("threads"), quiet=False))
        code = 0 if "checkpoint" in outcome else 1
    except TrainingInterrupted as stop:
        outcome, code = {"error": str(stop)}, stop.exit_code
    atomic_write_text(Path(spec["result"]), json.dumps(outcome))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
