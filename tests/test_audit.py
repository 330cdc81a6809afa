"""`ganzoo audit`: calibrated on planted copies, and its outputs, CLI and integrations.

Calibration: a copycat generator returns training images (exact, or shifted 1-2 px, contrast
scaled and noised) at copy rates 0-50%, the rest real images neither the model nor the
threshold saw. Per-sample detection and false alarms are measured on the real X-rays
(../shared/data/cxr, 64x64, `pixels`); C_T needs thousands of images per side to reach -3
at 10% copies, so it is measured on synthetic phantoms (32x32, 300 training, 2500 held-out,
2500 novel), and on the X-rays at the rates their size allows.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ganzoo
import ganzoo_audit
from ganzoo import hub
from ganzoo.api import DatasetOptions, GanzooError, ImageSet, Preprocessing, audit_of, load_dataset, model_sha256, read_audit, record_audit, write_png
from ganzoo.cli import build_app
from ganzoo.generate import generate_images
from ganzoo.plugins import register_plugin, registry, unregister_plugin
from ganzoo_audit.calibration import calibration_table, copycat, disjoint_parts, perturb
from ganzoo_audit.copying import data_copying_test, z_u
from ganzoo_audit.distances import DUPLICATE_RATIO, Neighbours, calibrated_threshold, nearest, wilson
from ganzoo_audit.features import PixelSpace, shifted
from ganzoo_audit.membership import membership_check, membership_statistics

REPO = Path(__file__).resolve().parents[1]
CXR = REPO.parent / "shared" / "data" / "cxr"
Q = 0.01


@pytest.fixture(scope="module", autouse=True)
def audit_plugin():
    """The plugin as its entry point would load it (registered here until it is installed), with its command."""
    registered = "memorization" not in registry("audits")
    if registered:
        register_plugin(ganzoo_audit, name="audit")
    app = build_app()
    if "audit" not in {c.name for c in app.registered_commands}:
        ganzoo_audit.ganzoo_register_commands(app=app)
    yield
    if registered:
        unregister_plugin("audit")


def within_false_alarm_bound(count: int, n: int, bound: float) -> bool:
    """At most the bound plus three binomial standard errors (the sampling error of n images)."""
    return count / n <= bound + 3 * math.sqrt(bound * (1 - bound) / n)


@pytest.fixture(scope="module")
def cxr_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    if not (CXR / "metadata.csv").exists():
        pytest.skip(f"real chest X-rays not found at {CXR}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(tmp_path_factory.mktemp("cxr_home")))
        real = load_dataset("folder", DatasetOptions(path=str(CXR), preprocessing=Preprocessing(resolution=64)))
        training, held_out, novel = disjoint_parts(real, [307, 153, 155])
        return calibration_table(PixelSpace(), training, held_out, novel, n=155, q=Q)


@pytest.fixture(scope="module")
def phantom_rows() -> list[dict]:
    sizes = (300, 2500, 2500)
    real = load_dataset("synthetic-cxr", DatasetOptions(max_images=sum(sizes), preprocessing=Preprocessing(resolution=32), seed=3))
    starts = np.cumsum((0,) + sizes)
    training, held_out, novel = (real.subset(list(range(a, a + s))) for a, s in zip(starts, sizes))
    return calibration_table(PixelSpace(), training, held_out, novel, n=2500, q=Q)


@pytest.mark.parametrize("rows", ["cxr_rows", "phantom_rows"])
def test_held_out_images_posing_as_samples_raise_few_false_alarms(rows: str, request: pytest.FixtureRequest) -> None:
    table = request.getfixturevalue(rows)
    null = table[0]
    assert null["kind"] == "none" and null["copies"] == 0 and null["held_out_duplicates"] == 0
    assert null["false_alarm_bound"] <= Q
    for row in table:
        assert within_false_alarm_bound(row["false_alarms"], row["n"] - row["copies"], Q), row


@pytest.mark.parametrize("rows", ["cxr_rows", "phantom_rows"])
def test_exact_and_lightly_perturbed_copies_are_detected(rows: str, request: pytest.FixtureRequest) -> None:
    table = [r for r in request.getfixturevalue(rows) if r["copies"]]
    assert {r["kind"] for r in table} == {"exact", "perturbed"} and len(table) == 10
    for row in table:
        assert row["detection"] >= 0.95, row


def test_c_t_is_near_zero_on_the_null_and_below_minus_3_from_10_percent_copies(phantom_rows: list[dict]) -> None:
    assert abs(phantom_rows[0]["c_t"]) < 2
    copying = [r for r in phantom_rows if r["rate"] >= 0.10]
    assert len(copying) == 6 and all(r["c_t"] <= -3 for r in copying), [(r["kind"], r["rate"], r["c_t"]) for r in copying]
    assert all(r["cells_used"] == 3 for r in phantom_rows)


def test_c_t_on_the_real_xrays_where_their_number_allows(cxr_rows: list[dict]) -> None:
    """153 held-out X-rays in 3 cells: C_T is about 0 without copies and falls with the copy rate."""
    assert abs(cxr_rows[0]["c_t"]) < 2
    for kind in ("exact", "perturbed"):
        values = [r["c_t"] for r in cxr_rows if r["kind"] == kind]
        assert values == sorted(values, reverse=True) and values[-1] <= -3, values


def test_copycat_plants_the_copies_it_says() -> None:
    training = torch.randint(0, 256, (20, 1, 16, 16), dtype=torch.uint8)
    novel = torch.randint(0, 256, (30, 1, 16, 16), dtype=torch.uint8)
    images, is_copy, source = copycat(training, novel, n=20, rate=0.25, kind="exact", seed=1)
    assert images.shape == (20, 1, 16, 16) and is_copy.sum() == 5 and (source[~is_copy] == -1).all()
    assert all(torch.equal(images[i], training[source[i]]) for i in np.flatnonzero(is_copy))
    edited, flags, sources = copycat(training, novel, n=20, rate=0.25, kind="perturbed", seed=1)
    for i in np.flatnonzero(flags):
        difference = (edited[i].float() - training[sources[i]].float()).abs()
        assert difference.max() > 0
    with pytest.raises(GanzooError, match="novel images needed"):
        copycat(training, novel, n=40, rate=0.0)


def test_pixel_space_forgives_small_shifts_and_contrast() -> None:
    images = textures(40, seed=0)
    space = PixelSpace(components=16)
    space.fit(images[:30])
    index = space.index()
    assert index.shape == (25, 30, 16)
    moved = shifted(images[:5], 2, -1)
    brighter = torch.clamp(images[:5].float() * 1.1 + 5, 0, 255).to(torch.uint8)
    others = nearest(space.embed(images[30:]), index, 2).dcr
    for copies in (images[:5], moved, brighter, perturb(images[:5])):
        found = nearest(space.embed(copies), index, 2)
        assert (found.indices[:, 0] == np.arange(5)).all()
        assert found.dcr.max() < 0.2 * others.min()


def textures(count: int, seed: int) -> torch.Tensor:
    """Smoothed noise images (N, 1, 32, 32): unlike one another, cheap to make."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([cv2.GaussianBlur(rng.integers(0, 256, (32, 32)).astype(np.uint8), (0, 0), 1.5) for _ in range(count)])[:, None])


def test_nearest_matches_brute_force_and_excludes_self() -> None:
    rng = np.random.default_rng(1)
    train, query = rng.normal(size=(50, 8)), rng.normal(size=(13, 8))
    found = nearest(query, train[None], 4)
    full = np.linalg.norm(query[:, None] - train[None], axis=-1)
    assert np.array_equal(found.indices, np.argsort(full, axis=1)[:, :4])
    assert np.allclose(found.distances, np.sort(full, axis=1)[:, :4])
    own = nearest(train, train[None], 1, exclude_self=True)
    self_distances = np.linalg.norm(train[:, None] - train[None], axis=-1) + np.diag(np.full(50, np.inf))
    assert np.allclose(own.dcr, self_distances.min(axis=1)) and (own.indices[:, 0] != np.arange(50)).all()


def test_threshold_is_the_conformal_quantile() -> None:
    values = np.arange(1, 200, dtype=float)  # n = 199: r = floor(0.01 * 200) = 2
    threshold = calibrated_threshold(values, 0.01)
    assert threshold["value"] == 2.0 and threshold["rank"] == 2 and threshold["false_alarm_bound"] == 2 / 200
    assert (values < threshold["value"]).mean() <= 0.01
    few = calibrated_threshold(np.array([3.0, 1.0, 2.0]), 0.01)
    assert few["value"] == 1.0 and few["false_alarm_bound"] == 0.25 and "too few" in few["note"]
    assert wilson(0, 100)[0] == 0.0 and 0 < wilson(0, 100)[1] < 0.05


def test_z_u_follows_meehan_et_al() -> None:
    """U counts pairs where the generated distance is larger; Z_U uses the paper's continuity correction."""
    generated, held_out = np.array([0.5, 2.5, 4.5]), np.array([1.0, 2.0, 3.0, 4.0])
    u = sum(g > h for g in generated for h in held_out)  # 0 + 2 + 4
    assert z_u(generated, held_out) == pytest.approx((u - (12 / 2 - 0.5)) / math.sqrt(12 * 8 / 12))
    cells = np.array([0] * 30 + [1] * 30)
    null = Neighbours(np.linspace(1, 2, 60)[:, None], np.zeros((60, 1), int), cells)
    copies = Neighbours(np.r_[np.zeros(30), np.linspace(1, 2, 30)][:, None], np.zeros((60, 1), int), cells)
    result = data_copying_test(copies, null, 2)
    assert result["value"] < -3 and result["cells_used"] == 2
    assert result["cells"][0]["z_u"] < result["cells"][1]["z_u"]
    sparse = data_copying_test(copies.take(np.arange(0, 60, 4)), null, 2)
    assert sparse["value"] is None and all("dropped" in c for c in sparse["cells"])


class Memorizer(torch.nn.Module):
    """A discriminator that remembers its training images: minus the distance to the nearest one."""

    def __init__(self, members: torch.Tensor) -> None:
        super().__init__()
        self.members = members.float().flatten(1) / 127.5 - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x.flatten(1), self.members).min(dim=1).values


def test_membership_finds_a_memorizing_discriminator_and_not_a_blind_one() -> None:
    gan = ganzoo.create_gan("dcgan", res=64)
    members = torch.randint(0, 256, (60, 1, 64, 64), dtype=torch.uint8)
    others = torch.randint(0, 256, (60, 1, 64, 64), dtype=torch.uint8)
    gan.discriminator = Memorizer(members)
    leak = membership_check(gan, {"components": ["generator", "discriminator"]}, members, others, torch.device("cpu"))
    assert leak["auc"] == 1.0 and leak["auc_ci95"][0] > 0.9 and leak["tpr_at_1pct_fpr"] == 1.0
    blind = membership_statistics(np.random.default_rng(0).normal(size=300), np.random.default_rng(1).normal(size=300))
    assert blind["auc_ci95"][0] < 0.5 < blind["auc_ci95"][1]
    assert "no discriminator" in membership_check(gan, {"components": ["generator"]}, members, others, torch.device("cpu"))["skipped"]


@pytest.fixture(scope="module")
def tiny_audit(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The session's 1-step phantom model audited against 96 phantoms it never saw."""
    out = tmp_path_factory.mktemp("tiny_audit")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(out / "home"))
        held_out = load_dataset("synthetic-cxr", DatasetOptions(max_images=96, seed=7, preprocessing=Preprocessing(resolution=64)))
        report = ganzoo.audit(str(tiny_checkpoint), holdout=held_out, n=64, features="pixels", top=6, out=out / "audit", device="cpu")
        assert audit_of(tiny_checkpoint)["verdict"] == report["verdict"]  # recorded for these weights
    return report, out / "audit"


def test_audit_of_a_checkpoint_writes_every_output(tiny_audit: tuple[dict, Path], tiny_checkpoint: Path) -> None:
    report, out = tiny_audit
    assert {p.name for p in out.iterdir()} == {"audit.json", "report.md", "gallery.png", "histograms.png"}
    saved = json.loads((out / "audit.json").read_text())
    assert saved["verdict"] == report["verdict"] and saved["flagged"]["n"] == 64
    assert saved["data"]["training"]["images"] == 32 and saved["data"]["training"]["as_recorded_by_checkpoint"] is True
    assert saved["data"]["held_out"]["images"] == 96 and saved["model"]["model_sha256"] == model_sha256(tiny_checkpoint)
    membership = saved["membership"]
    assert membership["n_training"] == 32 and membership["auc_ci95"][0] < 0.5 < membership["auc_ci95"][1]
    assert saved["copying"]["n_generated"] == 64 and len(saved["suspicious"]) == 6
    assert [s["dcr"] for s in saved["suspicious"]] == sorted(s["dcr"] for s in saved["suspicious"])
    summary = read_audit(out)
    assert summary["model_sha256"] == model_sha256(tiny_checkpoint) and "Research use only" in summary["markdown"]
    assert "phantom" not in summary["markdown"]  # counts and scores only: no file names in what may be published
    text = (out / "report.md").read_text()
    assert report["verdict"] in text and "gallery.png" in text and "research use only" in text.lower()
    assert cv2.imread(str(out / "histograms.png")).shape == (320, 1040, 3)


def folder(root: Path, images: torch.Tensor, prefix: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        write_png(root / f"{prefix}-{i:03d}.png", image)
    return root


def drawn(count: int, seed: int) -> torch.Tensor:
    """Gray 40x40 images of circles on noise, like conftest's `image_folder`."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        image = (rng.random((40, 40)) * 60).astype(np.uint8)
        cv2.circle(image, (int(rng.integers(12, 28)), int(rng.integers(12, 28))), int(rng.integers(5, 14)), int(rng.integers(100, 250)), -1)
        images.append(image[None])
    return torch.from_numpy(np.stack(images))


def test_cli_audits_a_folder_of_images_and_finds_the_copies(tmp_path: Path) -> None:
    training = folder(tmp_path / "train", drawn(40, 0), "t")
    held_out = folder(tmp_path / "held", drawn(40, 1), "h")
    seen = load_dataset("folder", DatasetOptions(path=str(training), preprocessing=Preprocessing(resolution=40)))
    copies, novel = seen.images[[3, 17, 29]], drawn(27, 2)
    generated = folder(tmp_path / "gen", torch.cat([copies, novel]), "g")
    result = CliRunner().invoke(build_app(), ["audit", "--generated", str(generated), "--data", str(training), "--holdout", str(held_out),
                                              "--features", "pixels", "--top", "5", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert set(report["flagged_indices"]) >= {0, 1, 2}
    assert result.output.strip().splitlines()[-1].startswith(f"{len(report['flagged_indices'])} of 30 samples flagged as near-copies")
    top = report["suspicious"][:3]
    assert {s["file"] for s in top} == {"g-000.png", "g-001.png", "g-002.png"} and all(s["dcr"] < 1e-6 for s in top)
    assert {s["neighbours"][0]["training_file"] for s in top} == {seen.files[i] for i in (3, 17, 29)}
    assert report["membership"]["skipped"] and report["model"]["model_sha256"] is None
    # The gallery: each pair is the sample, then its nearest training image, upscaled to 96 px.
    gallery = cv2.imread(str(tmp_path / "out" / "gallery.png"), cv2.IMREAD_GRAYSCALE)
    sample = cv2.resize(cv2.imread(str(generated / top[0]["file"]), cv2.IMREAD_GRAYSCALE), (96, 96), interpolation=cv2.INTER_NEAREST)
    first = gallery[26 + 18 : 26 + 18 + 96, 8 : 8 + 96]
    assert np.abs(first.astype(int) - sample.astype(int)).max() <= 1
    assert np.abs(gallery[44:140, 106:202].astype(int) - first.astype(int)).max() <= 1  # an exact copy: both halves alike


def test_cli_audits_a_checkpoint_trained_on_a_folder(tmp_path: Path, image_folder: Path) -> None:
    checkpoint = ganzoo.train({"arch": "dcgan", "data": str(image_folder), "label": "a", "steps": 1, "batch_size": 8, "out": str(tmp_path / "run")}, quiet=True)
    held_out = folder(tmp_path / "held" / "a", drawn(10, 5), "h").parent
    result = CliRunner().invoke(build_app(), ["audit", str(checkpoint), "--holdout", str(held_out), "-n", "40", "--features", "pixels",
                                              "--device", "cpu", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert report["data"]["training"]["images"] == 12 and report["data"]["held_out"]["images"] == 10  # label a only
    assert result.output.strip().splitlines()[-1].startswith(report["verdict"])
    assert "auc" in report["membership"] and report["threshold"]["note"]  # 10 held-out images are too few for q = 0.01
    # Images `ganzoo generate` wrote name their model in sidecars: auditing the folder counts for that model.
    generate_images(checkpoint, n=12, out=tmp_path / "samples", device="cpu")
    summary = ganzoo.audit(generated=tmp_path / "samples", data=str(image_folder), label="a", holdout=str(held_out), features="pixels")["summary"]
    assert summary["model_sha256"] == model_sha256(checkpoint) and audit_of(checkpoint)["created"] == summary["created"]


def test_a_checkpoint_trained_on_a_split_is_audited_against_its_held_out_part(tmp_path: Path, image_folder: Path) -> None:
    assert CliRunner().invoke(build_app(), ["split", str(image_folder), "--holdout", "0.25"]).exit_code == 0
    checkpoint = ganzoo.train({"arch": "dcgan", "data": str(image_folder), "steps": 1, "batch_size": 8, "out": str(tmp_path / "run")}, quiet=True)
    result = CliRunner().invoke(build_app(), ["audit", str(checkpoint), "-n", "30", "--features", "pixels", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert report["data"]["training"]["images"] == 18 and report["data"]["held_out"]["images"] == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "x"], "CHECKPOINT_OR_HUB_NAME"),
    (["--generated", "{tmp}", "--data", "{tmp}", "--holdout", "{tmp}", "--q", "0.7"], "--q must be in"),
    (["--generated", "{tmp}", "--data", "{tmp}"], "ganzoo split DATA"),
    (["--generated", "{tmp}", "--data", "{tmp}", "--holdout", "{tmp}", "--features", "nope"], "unknown feature space 'nope'; known: pixels"),
])
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    folder(tmp_path / "imgs", drawn(6, 0), "i")
    given = [a.replace("{tmp}", str(tmp_path / "imgs")) for a in args]
    result = CliRunner().invoke(build_app(), ["audit", *given, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output, result.output


def test_holdout_must_not_be_the_training_data(tmp_path: Path) -> None:
    images = folder(tmp_path / "imgs", drawn(8, 0), "i")
    with pytest.raises(GanzooError, match="pixel-identical to training images"):
        ganzoo.audit(generated=images, data=str(images), holdout=str(images), features="pixels")
    noisy = drawn(8, 0).numpy() + np.random.default_rng(1).normal(0, 1, (8, 1, 40, 40))
    again = folder(tmp_path / "again", torch.from_numpy(np.clip(noisy.round(), 0, 255).astype(np.uint8)), "r")  # the same images, re-encoded
    with pytest.raises(GanzooError, match="held-out images are near-copies of training images"):
        ganzoo.audit(generated=images, data=str(images), holdout=str(again), features="pixels")


def test_hub_push_puts_the_audit_in_the_model_card(tiny_audit: tuple[dict, Path], tiny_checkpoint: Path, tmp_path: Path) -> None:
    report, out = tiny_audit
    location = f"local-dir:{tmp_path / 'hub'}"
    result = CliRunner().invoke(build_app(), ["hub", "push", str(tiny_checkpoint), "audited", "--hub", location, "--license", "cc0-1.0", "--audit", str(out)])
    assert result.exit_code == 0, result.output
    info = hub.show("audited", location)
    assert info.front_matter["audit"]["verdict"] == report["verdict"] and "markdown" not in info.front_matter["audit"]
    assert "## Memorization audit" in info.card and report["summary"]["markdown"] in info.card
    with pytest.warns(UserWarning, match="no memorization audit given"):
        hub.push(tiny_checkpoint, "unaudited", location, license="cc0-1.0")
    assert "No audit was supplied" in hub.show("unaudited", location).card
    other = ganzoo.train({"arch": "dcgan", "images": 16, "steps": 1, "batch_size": 8, "out": str(tmp_path / "other")}, quiet=True)
    with pytest.raises(GanzooError, match="is an audit of model"):
        hub.push(other, "wrong", location, license="cc0-1.0", audit=read_audit(out))


def test_augment_warns_when_the_models_audit_flagged_copies(tiny_audit: tuple[dict, Path], tiny_checkpoint: Path, tmp_path: Path,
                                                             image_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ganzoo_study import augment

    summary = {**tiny_audit[0]["summary"], "flagged": 3, "verdict": "3 of 64 samples flagged as near-copies"}
    record_audit(summary)  # as `ganzoo audit` records it for these weights
    with caplog.at_level(logging.WARNING, logger="ganzoo"):
        manifest = augment(tiny_checkpoint, image_folder, "a", 14, tmp_path / "aug", device="cpu", allow_mismatch=True)
    assert manifest["audit"]["flagged"] == 3
    assert any("flagged 3 of 64 samples as near-copies" in r.getMessage() for r in caplog.records)


def test_duplicates_of_training_images_in_the_held_out_set_are_set_aside(tmp_path: Path) -> None:
    """A held-out X-ray that is a training X-ray again (two names, one image) would make the
    threshold 0 and hide every copy; it is left out of the calibration and reported."""
    images = textures(90, seed=4)
    training = ImageSet("t", images[:40], "t", files=[f"t{i}" for i in range(40)])
    held_out = ImageSet("h", torch.cat([images[40:80], images[:2]]), "h", files=[f"h{i}" for i in range(42)])
    generated = folder(tmp_path / "gen", torch.cat([images[5:8], images[80:90]]), "g")
    report = ganzoo_audit.audit(generated=generated, training=training, holdout=held_out, features="pixels")
    duplicates = report["data"]["held_out_duplicates"]
    assert duplicates["count"] == 2 and duplicates["pixel_identical"] == 2 and duplicates["files"] == ["h40", "h41"]
    assert report["data"]["held_out"]["used"] == 40 and report["threshold"]["value"] > 0
    assert set(report["flagged_indices"]) >= {0, 1, 2}
    undetected = report["distances"]["held_out"]["dcr"]["min"]
    assert undetected >= DUPLICATE_RATIO * report["distances"]["held_out"]["dcr"]["median"]
