"""Loss logging without per-step host synchronisation."""

from __future__ import annotations

import time

import torch


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
