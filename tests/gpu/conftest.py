"""GPU-only tests: marked `gpu` and skipped without CUDA (a skip GANZOO_REQUIRE_ALL=1 allows).

Here a failed CUDA graph capture raises instead of falling back to eager steps, and cuBLAS and
cuDNN are asked for deterministic kernels, so exact comparisons mean something.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

HERE = Path(__file__).resolve().parent
CUDA_SKIP = "CUDA is not available: tests/gpu runs on a GPU machine (benchmarks/gpu_check.sh tests)"
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts: deterministic GEMMs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Only this directory's items (the hook sees the whole session's)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason=CUDA_SKIP))


@pytest.fixture(autouse=True)
def strict_cuda_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANZOO_STRICT_CUDA_GRAPHS", "1")


@pytest.fixture
def deterministic() -> Iterator[None]:
    """Deterministic kernels for the duration of one test (warn where an op has none)."""
    cudnn = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = cudnn
