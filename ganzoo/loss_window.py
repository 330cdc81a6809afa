"""What a run tells while it trains: losses without per-step host syncs, plain progress lines
where no progress bar can draw, and the loss curve drawn next to the log."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

LOSS_CURVE_FILE = "loss.png"
PROGRESS_EVERY_S = 30.0


class LossWindow:
    """Losses summed on the device and read back once per log line: no per-step host sync."""

    def __init__(self) -> None:
        self.latest: dict[str, torch.Tensor] = {}
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counted = self.images = 0
        self.start = time.perf_counter()

    def add(self, values: dict[str, torch.Tensor] | None, images: int) -> None:
        self.images += images
        self.latest = values or {}
        if values:
            self.counted += 1
            for key, value in values.items():
                self.sums[key] = self.sums[key] + value if key in self.sums else value

    def flush(self) -> dict[str, float]:
        """Mean of each loss since the last flush, and images per second."""
        record = {key: float(value) / self.counted for key, value in self.sums.items()}
        record["images_per_s"] = self.images / max(time.perf_counter() - self.start, 1e-9)
        self._reset()
        return record


class ProgressLines:
    """One plain line every PROGRESS_EVERY_S seconds (and at the end): progress in a log file,
    under nohup or in CI, where the rich bar does not draw."""

    def __init__(self, total: int, steps_per_epoch: int, start_step: int) -> None:
        self.total, self.steps_per_epoch, self.start_step = total, steps_per_epoch, start_step
        self.started = self.last = time.perf_counter()

    def line(self, record: dict[str, Any], force: bool = False) -> str | None:
        now = time.perf_counter()
        if not force and now - self.last < PROGRESS_EVERY_S:
            return None
        self.last = now
        step, elapsed = record["step"], now - self.started
        done = max(step - self.start_step, 1)
        left = elapsed / done * (self.total - step)
        losses = " ".join(f"{k} {record[k]:.4g}" for k in ("d_loss", "g_loss") if k in record)
        return (
            f"step {step}/{self.total} (epoch {step / self.steps_per_epoch:.1f}) {losses}, "
            f"{record.get('images_per_s', 0):.0f} img/s, {format_seconds(elapsed)} elapsed, ~{format_seconds(left)} left"
        )


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def write_loss_curve(log_path: Path, png_path: Path) -> Path | None:
    """d_loss and g_loss against the step, from log.jsonl, as a small PNG (OpenCV, no matplotlib)."""
    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    records = [r for r in records if "d_loss" in r and "g_loss" in r and math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"])]
    if len(records) < 2:
        return None
    width, height, left, right, top, bottom = 560, 320, 60, 20, 30, 40
    img = np.full((height, width, 3), 255, np.uint8)
    steps = [r["step"] for r in records]
    values = [v for r in records for v in (r["d_loss"], r["g_loss"])]
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1.0
    x0, x1 = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1

    def point(step: float, value: float) -> tuple[int, int]:
        x = left + (step - x0) / (x1 - x0) * (width - left - right)
        y = height - bottom - (value - lo) / (hi - lo) * (height - top - bottom)
        return int(round(x)), int(round(y))

    cv2.rectangle(img, (left, top), (width - right, height - bottom), (170, 170, 170), 1)
    for key, colour in (("d_loss", (180, 90, 20)), ("g_loss", (30, 30, 200))):
        cv2.polylines(img, [np.array([point(r["step"], r[key]) for r in records], np.int32)], False, colour, 2, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "d_loss", (left + 8, top + 16), font, 0.45, (180, 90, 20), 1, cv2.LINE_AA)
    cv2.putText(img, "g_loss", (left + 70, top + 16), font, 0.45, (30, 30, 200), 1, cv2.LINE_AA)
    cv2.putText(img, f"{hi:.3g}", (4, top + 5), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:.3g}", (4, height - bottom), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"step {x0} .. {x1}", (left, height - 12), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(png_path), img):
        raise OSError(f"could not write {png_path}")
    return Path(png_path)
