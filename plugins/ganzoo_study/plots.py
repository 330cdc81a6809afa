"""Plain PNG figures drawn with OpenCV (already a dependency): no matplotlib needed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GREY, BLUE, WHITE = (0, 0, 0), (170, 170, 170), (180, 90, 20), (255, 255, 255)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, color: tuple[int, int, int] = BLACK, center: bool = False) -> None:
    if center:
        (w, _), _ = cv2.getTextSize(text, FONT, scale, 1)
        org = (org[0] - w // 2, org[1])
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def _short(value: float) -> str:
    return f"{value:.4g}"


def _write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def line_plot(path: Path, xs: Sequence[float | str], ys: Sequence[float], errors: Sequence[float] | None = None, title: str = "", xlabel: str = "", ylabel: str = "") -> Path:
    """Metric against a parameter's values, with +/- error bars; strings are evenly spaced categories."""
    width, height, left, right, top, bottom = 560, 380, 70, 20, 40, 55
    img = np.full((height, width, 3), 255, np.uint8)
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    positions = [float(x) for x in xs] if numeric else list(range(len(xs)))
    errs = [e if e is not None and math.isfinite(e) else 0.0 for e in (errors or [0.0] * len(ys))]
    finite = [(p, y, e) for p, y, e in zip(positions, ys, errs) if math.isfinite(y)]
    x0, x1 = (min(positions), max(positions)) if positions else (0.0, 1.0)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    lows = [y - e for _, y, e in finite] or [0.0]
    highs = [y + e for _, y, e in finite] or [1.0]
    y0, y1 = min(lows), max(highs)
    pad = (y1 - y0) * 0.1 or max(abs(y1) * 0.1, 1.0)
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float, y: float) -> tuple[int, int]:
        u = left + (x - x0) / (x1 - x0) * (width - left - right)
        v = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return int(round(u)), int(round(v))

    cv2.rectangle(img, (left, top), (width - right, height - bottom), GREY, 1)
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        _, v = px(x0, y)
        cv2.line(img, (left - 4, v), (left, v), BLACK, 1)
        _text(img, _short(y), (4, v + 4), 0.38)
    for p, x in zip(positions, xs):
        u, _ = px(p, y0)
        cv2.line(img, (u, height - bottom), (u, height - bottom + 4), BLACK, 1)
        _text(img, str(x), (u, height - bottom + 18), 0.38, center=True)
    points = [px(p, y) for p, y, _ in finite]
    for a, b in zip(points, points[1:]):
        cv2.line(img, a, b, BLUE, 2, cv2.LINE_AA)
    for (p, y, e), point in zip(finite, points):
        if e > 0:
            cv2.line(img, px(p, y - e), px(p, y + e), BLUE, 1)
        cv2.circle(img, point, 4, BLUE, -1, cv2.LINE_AA)
    _text(img, title, (width // 2, 24), 0.55, center=True)
    _text(img, xlabel, ((left + width - right) // 2, height - 12), 0.45, center=True)
    _text(img, ylabel, (4, top - 8), 0.42)
    return _write(path, img)


def confusion_plot(path: Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str = "") -> Path:
    """A 2x2 (or KxK) confusion matrix: rows true class, columns predicted class, counts shown."""
    k = len(labels)
    cell, left, top = 90, 110, 70
    img = np.full((top + k * cell + 30, left + k * cell + 20, 3), 255, np.uint8)
    peak = max(1, max(max(row) for row in matrix))
    for i in range(k):
        for j in range(k):
            shade = int(255 - 200 * matrix[i][j] / peak)
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (255, shade, shade), -1)
            cv2.rectangle(img, (x, y), (x + cell, y + cell), GREY, 1)
            _text(img, str(matrix[i][j]), (x + cell // 2, y + cell // 2 + 6), 0.7, WHITE if shade < 120 else BLACK, center=True)
        _text(img, labels[i], (8, top + i * cell + cell // 2 + 5), 0.45)
        _text(img, labels[i], (left + i * cell + cell // 2, top - 8), 0.45, center=True)
    _text(img, "predicted", (left + k * cell // 2, top - 30), 0.45, center=True)
    _text(img, "true", (8, top - 8), 0.45)
    _text(img, title, (8, 20), 0.5)
    return _write(path, img)


def labelled_row(path: Path, images: Sequence[np.ndarray], labels: Sequence[str], gap: int = 12) -> Path:
    """Grids side by side, each with its label above: models compared at a glance."""
    tiles = [cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else im for im in images]
    height = max(t.shape[0] for t in tiles) + 30
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = gap
    for tile, label in zip(tiles, labels):
        canvas[30 : 30 + tile.shape[0], x : x + tile.shape[1]] = tile
        _text(canvas, label[:40], (x, 20), 0.5)
        x += tile.shape[1] + gap
    return _write(path, canvas)
