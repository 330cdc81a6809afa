"""The seed study as library functions: sweep (Tables 1-4), compare (5), classify (6), augment.

Each writes results.csv, results.json and report.md into its output directory; the CLI
commands (`ganzoo sweep|compare|classify|augment`) are thin wrappers around these.
"""

from __future__ import annotations

from .classifier import classify
from .comparison import compare
from .rebalance import augment
from .sweeps import sweep

__all__ = ["augment", "classify", "compare", "sweep"]
