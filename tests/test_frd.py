"""The Frechet Radiomic Distance plugin (`frd`) on real chest X-rays, offline, on the CPU.

pyradiomics takes ~0.15-0.25 s per 64x64 image on one core, so the real images' features are
extracted once per module and most tests work from them; the tests of the metric itself
use a handful of images.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ganzoo
import ganzoo.cli
from ganzoo import api
from ganzoo.evaluation import check_result
from ganzoo.plugins import register_plugin, registry, unregister_plugin

pytest.importorskip("frd_score", reason="frd-score is not installed: pip install 'ganzoo[frd]'")
pytest.importorskip("radiomics", reason="pyradiomics-bhklab is not installed: pip install 'ganzoo[frd]'")

import ganzoo_frd  # noqa: E402
from ganzoo_frd import cache  # noqa: E402
from ganzoo_frd.features import extract, worker_count  # noqa: E402
from ganzoo_frd.metric import FRD_METRIC, frd_from_features, frechet_distance  # noqa: E402

CXR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cxr"
CPU = torch.device("cpu")
N = 32


@pytest.fixture(scope="module", autouse=True)
def frd_plugin() -> None:
    """The plugin through its entry point when installed, else registered here as it would be."""
    registered = "frd" not in registry("metrics").list()
    if registered:
        register_plugin(ganzoo_frd, "frd")
    yield
    if registered:
        unregister_plugin("frd")


def _xrays(n: int, resolution: int = 64) -> api.ImageSet:
    if not (CXR / "metadata.csv").exists():
        pytest.skip(f"real chest X-rays not found at {CXR}")
    return api.load_dataset("folder", api.DatasetOptions(path=str(CXR), label="covid", max_images=n, preprocessing=api.Preprocessing(resolution=resolution)))


@pytest.fixture(scope="module")
def xrays(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """32 COVID X-rays at 64x64 and 16 uniform-noise images, with their raw radiomic features."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(tmp_path_factory.mktemp("frd_home")))
        real = _xrays(N)
    noise = np.random.default_rng(0).integers(0, 256, (N // 2, 64, 64), dtype=np.uint8)
    features, names, failures = extract(real.images[:, 0].numpy())
    assert not failures and features.shape == (N, len(names)) and len(names) > 300
    return {"real": real, "features": features, "names": names, "noise": extract(noise)[0]}


def _context(**options: object) -> api.MetricContext:
    return api.MetricContext(CPU, options={"frd_workers": 1, **options})


def test_frd_of_a_set_with_itself_is_zero_not_log_zero(xrays: dict) -> None:
    result = check_result("frd", frd_from_features(xrays["features"], xrays["features"], xrays["names"]))
    assert 0.0 <= result["value"] < 1e-8 and result["log_value"] is None
    assert result["n_features"] + result["dropped"]["constant_features"] == len(xrays["names"])
    assert result["dropped"]["constant_features"] > 0  # e.g. the mask's voxel count: NaN after z-scoring, dropped
    assert "original" in result["image_types"] and "glcm" in result["feature_classes"]


def test_noise_is_far_from_real_xrays_and_two_halves_are_close(xrays: dict) -> None:
    half_a, half_b = xrays["features"][: N // 2], xrays["features"][N // 2 :]
    halves = frd_from_features(half_b, half_a)
    noise = frd_from_features(xrays["noise"], half_a)
    assert math.isfinite(halves["log_value"]) and noise["log_value"] > halves["log_value"] + 2  # > e^2 times apart
    assert noise["value"] > 5 * halves["value"] > 0


def test_equals_frd_score_on_image_folders(xrays: dict, tmp_path: Path) -> None:
    """frd-score's own pipeline (PNG folders, its process pool) gives the same log FRD."""
    import frd_score

    parts = {"a": slice(0, 10), "b": slice(N // 2, N // 2 + 10)}
    for name, rows in parts.items():
        (tmp_path / name).mkdir()
        for i, image in enumerate(xrays["real"].images[rows, 0].numpy()):
            cv2.imwrite(str(tmp_path / name / f"{i:03d}.png"), image)
    package = frd_score.compute_frd([str(tmp_path / "a"), str(tmp_path / "b")], num_workers=1)
    ours = frd_from_features(xrays["features"][parts["b"]], xrays["features"][parts["a"]])
    assert ours["log_value"] == pytest.approx(package, rel=1e-5)


def test_worker_processes_give_the_same_features(xrays: dict) -> None:
    features, names, failures = extract(xrays["real"].images[:5, 0].numpy(), workers=2)
    assert names == xrays["names"] and not failures
    np.testing.assert_array_equal(features, xrays["features"][:5])


def test_frechet_distance_is_the_exact_formula() -> None:
    from scipy import linalg

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 5)), rng.normal(1.0, 2.0, size=(40, 5)) @ rng.normal(size=(5, 5))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    expected = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(x, y)[0] == pytest.approx(expected, rel=1e-9)


def test_flat_images_are_left_out_and_said_so(xrays: dict) -> None:
    images = np.stack([np.zeros((64, 64), np.uint8), xrays["real"].images[0, 0].numpy()])
    features, _, failures = extract(images)
    assert failures == {0: "a flat image (every pixel 0)"} and np.isnan(features[0]).all()
    np.testing.assert_array_equal(features[1], xrays["features"][0])
    fake = np.concatenate([features[:1], xrays["features"][N // 2 :]])
    result = frd_from_features(fake, xrays["features"][: N // 2])
    assert result["dropped"]["generated_images"] == 1 and "left out" in result["warning"]
    assert result["value"] == pytest.approx(frd_from_features(xrays["features"][N // 2 :], xrays["features"][: N // 2])["value"])
    with pytest.raises(api.GanzooError, match="at least 2 generated images with radiomic features, got 1 of 2"):
        frd_from_features(features, xrays["features"])
    with pytest.raises(api.GanzooError, match="no radiomic features for any of the 2 images"):
        extract(np.full((2, 16, 16), 7, np.uint8))


def test_fewer_images_than_needed_is_a_clear_error(xrays: dict) -> None:
    metrics = api.get_metrics(["frd"])
    with pytest.raises(api.GanzooError, match="frd needs at least 2 generated and real images, got 1 generated, 32 real"):
        api.compute_metrics(xrays["real"].images[:1], xrays["real"], metrics, _context())


def test_real_features_are_cached_and_a_damaged_entry_is_recomputed(xrays: dict, caplog: pytest.LogCaptureFixture) -> None:
    real = xrays["real"].subset([0, 1, 2, 3])
    cache.forget()
    first = FRD_METRIC.compute(real.images, real, _context())["radiomics"]
    assert (first["real_cached"], first["extracted_images"]) == (False, 4)  # the generated images are the same pixels: found in memory
    cache.forget()
    again = FRD_METRIC.compute(real.images, real, _context())
    assert (again["radiomics"]["real_cached"], again["radiomics"]["extracted_images"]) == (True, 0)
    assert again["value"] < 1e-8 and again["log_value"] is None
    entries = list(api.cache_dir("features").glob("radiomics-*.safetensors"))
    assert len(entries) == 1
    entries[0].write_bytes(b"not safetensors")
    cache.forget()
    with caplog.at_level("WARNING", logger="ganzoo"):
        redone = FRD_METRIC.compute(real.images, real, _context())["radiomics"]
    assert (redone["real_cached"], redone["extracted_images"]) == (False, 4) and "damaged radiomics cache" in caplog.text


def test_cli_evaluate_frd(tiny_checkpoint: Path, tmp_path: Path) -> None:
    _xrays(6)
    out = tmp_path / "eval.json"
    args = ["evaluate", str(tiny_checkpoint), "--data", str(CXR), "--label", "covid", "--metrics", "frd", "-n", "6", "--max-real", "6", "--device", "cpu", "--json", str(out)]
    result = CliRunner().invoke(ganzoo.cli.build_app(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    frd = report["metrics"]["frd"]
    assert (frd["n_fake"], frd["n_real"]) == (6, 6) and frd["value"] > 0 and math.isfinite(frd["log_value"])
    assert {"frd-score", "pyradiomics-bhklab"} <= set(report["versions"]) and "frd" in result.output


def test_api_evaluate_frd_with_the_real_vs_real_baseline(tiny_checkpoint: Path) -> None:
    gan = ganzoo.load(str(tiny_checkpoint))
    real = _xrays(8, gan.resolution)
    report = api.evaluate(gan, real, metrics=["frd"], n=4, device="cpu", baseline=True, options={"frd_workers": 1})
    generated, baseline = report["metrics"]["frd"], report["baseline"]["frd"]
    assert (generated["n_fake"], generated["n_real"], baseline["n_real_held_out"], baseline["n_real"]) == (4, 8, 4, 4)
    assert generated["value"] > baseline["value"] > 0
    assert baseline["radiomics"]["extracted_images"] == 0  # both halves of the real set were remembered


def test_missing_packages_name_the_install_command(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    monkeypatch.setitem(sys.modules, "radiomics", None)
    with pytest.raises(api.GanzooError, match=r"pyradiomics .*pip install 'ganzoo\[frd\]'"):
        FRD_METRIC.ready()
    monkeypatch.setitem(sys.modules, "frd_score", None)
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["evaluate", str(tiny_checkpoint), "--metrics", "frd", "-n", "4"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: the frd metric needs frd-score: pip install 'ganzoo[frd]' (frd-score and pyradiomics-bhklab)"
    ]


def test_worker_count_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANZOO_FRD_WORKERS", "3")
    assert worker_count() == 3 and worker_count(1) == 1
    monkeypatch.setenv("GANZOO_FRD_WORKERS", "many")
    with pytest.raises(api.GanzooError, match="frd workers must be a whole number >= 1, got 'many'"):
        worker_count()
    with pytest.raises(api.GanzooError, match="frd workers must be >= 1, got 0"):
        worker_count(0)
