"""The audit's two figures, drawn with OpenCV (no plotting library needed).

`gallery.png` shows training images: it is written only into the user's `--out` directory,
never into a model card or hub push.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GREY, WHITE, RED = (0, 0, 0), (160, 160, 160), (255, 255, 255), (40, 40, 220)
GENERATED, HELD_OUT = (180, 90, 20), (30, 140, 240)  # BGR: blue, orange
PAIRS_PER_ROW = 4


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path


def _text(img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int] = BLACK, scale: float = 0.4) -> None:
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def _tile(image: torch.Tensor, size: int) -> np.ndarray:
    gray = image[0].numpy()
    interpolation = cv2.INTER_NEAREST if gray.shape[0] < size else cv2.INTER_AREA
    return cv2.cvtColor(cv2.resize(gray, (size, size), interpolation=interpolation), cv2.COLOR_GRAY2BGR)


def gallery(path: Path, generated: torch.Tensor, training: torch.Tensor, suspicious: Sequence[dict[str, Any]]) -> Path:
    """The most suspicious samples, each as generated | nearest training image, closest first;
    a red frame and caption mark flagged ones."""
    size, gap, caption, header = max(96, int(generated.shape[-1])), 8, 18, 26
    pair_w = 2 * size + 2
    rows = max(1, -(-len(suspicious) // PAIRS_PER_ROW))
    cols = max(1, min(PAIRS_PER_ROW, len(suspicious)))
    canvas = np.full((header + rows * (size + caption + gap), cols * (pair_w + gap) + gap, 3), 255, np.uint8)
    _text(canvas, "generated | nearest training image, closest first (red: flagged as near-copy)", (gap, 17), scale=0.45)
    if not suspicious:
        _text(canvas, "no samples", (gap, header + 20))
    for rank, item in enumerate(suspicious):
        row, col = divmod(rank, PAIRS_PER_ROW)
        x, y = gap + col * (pair_w + gap), header + row * (size + caption + gap)
        train_index = item["neighbours"][0]["training_index"]
        color = RED if item["flagged"] else BLACK
        _text(canvas, f"#{rank + 1} d={item['dcr']:.3g}" + (" FLAGGED" if item["flagged"] else ""), (x, y + 13), color)
        top = y + caption
        canvas[top : top + size, x : x + size] = _tile(generated[item["index"]], size)
        canvas[top : top + size, x + size + 2 : x + pair_w] = _tile(training[train_index], size)
        if item["flagged"]:
            cv2.rectangle(canvas, (x - 2, top - 2), (x + pair_w + 1, top + size + 1), RED, 2)
    return _write(path, canvas)


def _panel(img: np.ndarray, origin: tuple[int, int], size: tuple[int, int], series: Sequence[tuple[np.ndarray, tuple[int, int, int], str]],
           title: str, marker: float | None = None) -> None:
    """Normalised histograms (share of each set per bin) as step lines, with an optional threshold line."""
    x0, y0 = origin
    width, height = size
    left, bottom, top = 50, 48, 24
    values = np.concatenate([v[np.isfinite(v)] for v, _, _ in series if len(v)]) if any(len(v) for v, _, _ in series) else np.zeros(1)
    hi = float(np.quantile(values, 0.995)) if len(values) else 1.0
    hi = max(hi, (marker or 0.0) * 1.1, 1e-9)
    bins = np.linspace(0.0, hi, 41)
    counts = [np.histogram(np.clip(v[np.isfinite(v)], 0, hi), bins)[0] / max(1, np.isfinite(v).sum()) for v, _, _ in series]
    peak = max([float(c.max()) for c in counts if len(c)] + [1e-9])
    plot_w, plot_h = width - left - 12, height - bottom - top
    px = (lambda value: int(x0 + left + plot_w * value / hi))
    py = (lambda share: int(y0 + top + plot_h * (1 - share / peak)))
    cv2.rectangle(img, (x0 + left, y0 + top), (x0 + left + plot_w, y0 + top + plot_h), GREY, 1)
    _text(img, title, (x0 + left, y0 + 16), scale=0.45)
    for tick in np.linspace(0, hi, 5):
        _text(img, f"{tick:.3g}", (px(tick) - 12, y0 + top + plot_h + 14), scale=0.35)
    _text(img, f"{peak:.2f}", (x0 + 4, y0 + top + 8), scale=0.35)
    _text(img, "0", (x0 + 30, y0 + top + plot_h), scale=0.35)
    for (values, color, label), share in zip(series, counts):
        points = [(px(bins[0]), py(0))]
        for i, s in enumerate(share):
            points += [(px(bins[i]), py(s)), (px(bins[i + 1]), py(s))]
        points.append((px(bins[-1]), py(0)))
        cv2.polylines(img, [np.array(points, np.int32)], False, color, 2, cv2.LINE_AA)
    for i, (values, color, label) in enumerate(series):  # the legend, under the axis
        x = x0 + left + 200 * i
        cv2.line(img, (x, y0 + height - 12), (x + 18, y0 + height - 12), color, 2, cv2.LINE_AA)
        _text(img, f"{label} (n={len(values)})", (x + 24, y0 + height - 8), color)
    if marker is not None and np.isfinite(marker):
        cv2.line(img, (px(marker), y0 + top), (px(marker), y0 + top + plot_h), RED, 1, cv2.LINE_AA)
        _text(img, "threshold", (px(marker) + 3, y0 + top + plot_h - 6), RED, 0.35)


def histograms(path: Path, generated_dcr: np.ndarray, held_out_dcr: np.ndarray, generated_nndr: np.ndarray, held_out_nndr: np.ndarray, threshold: float) -> Path:
    """Distance to the closest training image (with the flag threshold) and NNDR, generated vs held-out."""
    width, height = 520, 320
    img = np.full((height, 2 * width, 3), 255, np.uint8)
    _panel(img, (0, 0), (width, height), [(generated_dcr, GENERATED, "generated"), (held_out_dcr, HELD_OUT, "held-out real")],
           "distance to the closest training image (DCR)", threshold)
    _panel(img, (width, 0), (width, height), [(generated_nndr, GENERATED, "generated"), (held_out_nndr, HELD_OUT, "held-out real")],
           "nearest-neighbour distance ratio d1/d2 (NNDR)")
    return _write(path, img)
