"""How well a binary classifier does on the test split: the numbers of Table 6."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

METRICS = ("accuracy", "recall", "precision", "f1", "specificity", "auroc")


def auroc(y: Sequence[int], score: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN when one class is absent."""
    y_arr, s = np.asarray(y), np.asarray(score, dtype=np.float64)
    pos, neg = int(y_arr.sum()), int(len(y_arr) - y_arr.sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y_arr == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def binary_metrics(y: Sequence[int], prob: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, recall (sensitivity), precision, F1, specificity, AUROC and the confusion matrix."""
    y_arr = np.asarray(y, dtype=int)
    pred = (np.asarray(prob) >= threshold).astype(int)
    tp = int(((pred == 1) & (y_arr == 1)).sum())
    tn = int(((pred == 0) & (y_arr == 0)).sum())
    fp = int(((pred == 1) & (y_arr == 0)).sum())
    fn = int(((pred == 0) & (y_arr == 1)).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else math.nan

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else (0.0 if tp + fp + fn else math.nan)
    return {
        "accuracy": ratio(tp + tn, len(y_arr)),
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "specificity": ratio(tn, tn + fp),
        "auroc": auroc(y_arr, prob),
        "confusion": [[tn, fp], [fn, tp]],
    }
