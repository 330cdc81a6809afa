"""The study commands on tiny CPU settings: sweep (resume), compare (intervals), classify, augment.

Mostly KID is computed (FID's 2048x2048 eigenproblem costs ~20 s per value on a 2-core CPU),
with a handful of images; one test runs sweep and compare with every metric that works
offline. One 1-step DCGAN is trained per module and reused.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import ganzoo
import ganzoo.api
import ganzoo.cli
from ganzoo.api import GanzooError
from ganzoo_study import augment, classify, compare, sweep
from ganzoo_study.classifier_metrics import binary_metrics
from ganzoo_study.common import parse_vary, summarize
from ganzoo_study.records import Record, split
from ganzoo_study.rebalance import inside_name
from ganzoo_study.sweeps import plan

TINY = {"arch": "dcgan", "steps": 1, "batch_size": 8, "images": 16}
CXR_SPLIT = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "cxr-split.json"
pytestmark = pytest.mark.usefixtures("executors_plugin")  # the `local` executor trains the runs


@pytest.fixture
def weights(inception_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GANZOO_INCEPTION_WEIGHTS", str(inception_file))
    return inception_file


def test_parse_vary_types_values() -> None:
    assert parse_vary(["images=1000,2000", "noise_factor=0,0.5", "normalize=none,torch"]) == {
        "images": [1000, 2000], "noise_factor": [0.0, 0.5], "normalize": ["none", "torch"]}
    with pytest.raises(GanzooError, match="unknown key"):
        parse_vary(["nope=1"])
    with pytest.raises(GanzooError, match="not a valid value"):
        parse_vary(["images=many"])


def test_plan_epochs_is_one_run_per_curve() -> None:
    runs, rows = plan(TINY | {"steps": None, "epochs": 1}, {"res": [64, 32], "epochs": [2, 4, 6]})
    epoch_runs = [r for r in runs if r.epochs_points]
    # res=64 is the base (1 epoch): scored on the curve at epoch 1, so the curve checkpoints every epoch.
    assert len(epoch_runs) == 1 and epoch_runs[0].config["epochs"] == 6 and epoch_runs[0].config["checkpoint_every"] == 1
    assert [r.name for r in runs] == ["res=32", "base__epochs"]
    assert [(r.run, r.epoch) for r in rows if r.table == "res"] == [("base__epochs", 1), ("res=32", None)]
    assert [r.epoch for r in rows if r.table == "epochs"] == [2, 4, 6]
    assert {r.run for r in rows if r.table == "epochs"} == {epoch_runs[0].name}


def test_sweep_writes_artefacts_and_resumes(tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sweep"
    vary = {"images": [16, 24], "noise_factor": [0.0, 0.1]}
    results = sweep(TINY, vary, out, mode="grid", metrics=("kid",), eval_n=4, max_real=8, device="cpu")
    assert len(results["runs"]) == 4 and len(results["rows"]) == 4
    for name in ("results.csv", "results.json", "report.md", "base.toml", "plots/images-kid.png", "plots/noise_factor-kid.png"):
        assert (out / name).is_file(), name
    for row in results["rows"]:
        assert (out / row["grid"]).is_file()
        assert row["metrics"]["kid"]["n_fake"] == 4 and row["metrics"]["kid"]["n_real"] == 8
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    report = (out / "report.md").read_text()
    assert "ganzoo sweep" in report and report.count("ganzoo train") == 4

    def no_training(config: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished evaluation was redone")

    monkeypatch.setattr("ganzoo.executors.train", no_training)
    monkeypatch.setattr("ganzoo_study.scores.evaluate", no_evaluation)
    again = sweep(TINY, vary, out, mode="grid", metrics=("kid",), eval_n=4, max_real=8, device="cpu")
    assert [r["metrics"]["kid"]["mean"] for r in again["rows"]] == [r["metrics"]["kid"]["mean"] for r in results["rows"]]


class MeanBrightness(ganzoo.api.Metric):
    """A cheap metric (no Inception): |mean of fake - mean of real| / 255."""

    def compute(self, fake: torch.Tensor, real: Any, context: Any) -> dict[str, Any]:
        return {"value": abs(fake.float().mean() - real.images.float().mean()).item() / 255}


class MeanBrightnessPlugin:
    @staticmethod
    @ganzoo.api.hookimpl
    def ganzoo_register_metrics(register: Any) -> None:
        register("mean-brightness", MeanBrightness())


def test_sweep_trains_the_base_once_and_reports_every_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The base was trained as `noise_factor=0.0`, again as `normalize=none`, and again as the epochs curve."""
    trained: list[dict[str, Any]] = []

    def counting_train(config: dict[str, Any], **kwargs: Any) -> Path:
        trained.append(config)
        return ganzoo.api.train(config, **kwargs)

    monkeypatch.setattr("ganzoo.executors.train", counting_train)
    ganzoo.api.register_plugin(MeanBrightnessPlugin, name="mean-brightness-test")
    try:
        base = {"arch": "dcgan", "batch_size": 8, "images": 16, "epochs": 1}
        vary = {"noise_factor": [0.0, 0.1], "normalize": ["none"], "epochs": [1, 2]}
        results = sweep(base, vary, tmp_path / "sweep", metrics=("mean-brightness",), eval_n=4, max_real=8, device="cpu")
    finally:
        ganzoo.api.unregister_plugin("mean-brightness-test")
    assert sorted(Path(c["out"]).name for c in trained) == ["base__epochs", "noise_factor=0.1"]
    base_rows = [r for r in results["rows"] if r["setting"] in ({"noise_factor": 0.0}, {"normalize": "none"}, {"epochs": 1})]
    assert {(r["run"], r["epoch"]) for r in base_rows} == {("base__epochs", 1)}
    assert len({r["metrics"]["mean-brightness"]["mean"] for r in base_rows}) == 1
    report = (tmp_path / "sweep" / "report.md").read_text()
    base_table = report.split("## Base configuration")[1].split("## Reproduce")[0]
    options = [f.name for f in dataclasses.fields(ganzoo.api.TrainConfig) if not f.metadata.get("internal")]
    assert [line.split(" | ")[0].strip("| ") for line in base_table.splitlines() if line.startswith("| ")][1:] == options
    assert "| images | 16 | base config |" in base_table and "| arch | dcgan | default |" in base_table
    assert "| loss | the architecture's | default |" in base_table


def test_compare_reports_intervals(tmp_path: Path, weights: Path, tiny_checkpoint: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('arch = "dcgan"\nsteps = 1\nbatch_size = 8\nimages = 16\nseed = 3\n')
    report = compare([str(tiny_checkpoint), str(config)], tmp_path / "cmp", metrics=("kid",), n=4, gen_seeds=2, max_real=8, device="cpu")
    assert len(report["models"]) == 2
    for entry in report["models"].values():
        kid = entry["over_generation_seeds"]["kid"]
        assert kid["n"] == 2 and kid["low"] <= kid["mean"] <= kid["high"]
    assert (tmp_path / "cmp" / "samples-side-by-side.png").is_file()
    assert "95% CI" in (tmp_path / "cmp" / "report.md").read_text()


def test_split_never_puts_synthetic_in_test() -> None:
    records = [Record(Path(f"r{i}.png"), "pos" if i % 2 else "neg") for i in range(20)]
    records += [Record(Path(f"s{i}.png"), "pos", synthetic=True) for i in range(10)]
    train, test, how = split(records, "pos", 0.3, seed=1)
    assert how == "stratified" and not any(records[i].synthetic for i in test)
    assert sorted(train + test) == list(range(30))
    grouped = [Record(Path(f"p{i}.png"), "pos" if i < 10 else "neg", group=f"patient{i // 2}") for i in range(20)]
    train, test, how = split(grouped, "pos", 0.3, seed=0)
    assert how == "patient"
    assert not {grouped[i].group for i in train} & {grouped[i].group for i in test}


def test_binary_metrics_and_summary() -> None:
    m = binary_metrics([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    assert m["confusion"] == [[1, 1], [1, 1]] and m["accuracy"] == 0.5 and m["auroc"] == 0.75
    s = summarize([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["low"] < 2.0 < s["high"]


def train_on(folder: Path, label: str | None, out: Path) -> Path:
    """A 1-step DCGAN trained on `folder` (class `label`, or all classes when None)."""
    return ganzoo.train({"arch": "dcgan", "data": str(folder), "label": label, "steps": 1, "batch_size": 8, "out": str(out)})


def test_augment_then_classify(tmp_path: Path, image_folder: Path) -> None:
    out = tmp_path / "aug"
    manifest = augment(train_on(image_folder, "a", tmp_path / "run-a"), image_folder, "a", 20, out, device="cpu")
    assert manifest["mismatch"] is None
    written = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert written == {e["file"] for e in manifest["files"]}
    synthetic = {e["file"] for e in manifest["files"] if e["synthetic"]}
    assert len(synthetic) == 8 and all(f.startswith("synthetic/a/") for f in synthetic)
    assert manifest["counts"] == {"a": {"real": 12, "synthetic": 8}, "b": {"real": 12, "synthetic": 0}}
    with open(out / "metadata.csv") as f:
        assert {r["file"] for r in csv.DictReader(f) if r["synthetic"] == "True"} == synthetic
    assert all((out / e["file"]).is_symlink() for e in manifest["files"] if not e["synthetic"])

    report = classify(out, tmp_path / "cls", positive="a", seeds=2, epochs=1, res=32, batch_size=8, test_fraction=0.3, device="cpu")
    assert set(report["settings"]) == {"real", "real+aug"}
    assert report["settings"]["real+aug"]["n_train_synthetic"] == 8 and report["settings"]["real"]["n_train_synthetic"] == 0
    n_test = report["split"]["n_test"]
    for setting in report["settings"].values():
        assert set(setting["metrics"]) == {"accuracy", "recall", "precision", "f1", "specificity", "auroc"}
        for run in setting["per_seed"]:
            assert sum(map(sum, run["confusion"])) == n_test
    with open(tmp_path / "cls" / "split.csv") as f:
        test_files = [r["file"] for r in csv.DictReader(f) if r["split"] == "test"]
    assert len(test_files) == n_test and not any("synthetic" in f for f in test_files)
    assert (tmp_path / "cls" / "confusion-real-aug.png").is_file()
    assert "| real+aug |" in (tmp_path / "cls" / "report.md").read_text()


def test_cli_classify_on_real_xrays(tmp_path: Path, cxr_dir: Path) -> None:
    result = CliRunner().invoke(ganzoo.cli.build_app(), [
        "classify", "--data", str(cxr_dir), "--positive", "covid", "--max-images", "40", "--seeds", "1", "--epochs", "1",
        "--res", "32", "--batch-size", "16", "--device", "cpu", "--out", str(tmp_path / "cls"), "--split", str(CXR_SPLIT)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "cls" / "results.json").read_text())
    assert report["split"]["file"] == str(CXR_SPLIT)
    sides = json.loads(CXR_SPLIT.read_text())["files"]
    with open(tmp_path / "cls" / "split.csv") as f:
        rows = [(Path(r["file"]).relative_to(cxr_dir).as_posix(), r["split"]) for r in csv.DictReader(f)]
    # The test split is the split file's held-out part: no image a GAN of its train part saw.
    assert len(rows) == 40 and {sides[name] for name, side in rows if side == "test"} == {"holdout"}
    assert {sides[name] for name, side in rows if side == "train"} == {"train"}
    assert report["split"]["n_test"] == sum(side == "test" for _, side in rows) > 0
    assert f"the held-out part of {CXR_SPLIT}" in (tmp_path / "cls" / "report.md").read_text()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["augment", str(tmp_path), "--data", str(tmp_path / "nope"), "--label", "a", "--to-count", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "error:" in result.output


OFFLINE_METRICS = ("fid", "kid", "precision-recall")


def _finite(value: object) -> bool:
    return isinstance(value, float) and value == value and abs(value) != float("inf")


def test_compare_cli_with_every_offline_metric(tmp_path: Path, weights: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "cmp"
    result = CliRunner().invoke(ganzoo.cli.build_app(), [
        "compare", str(tiny_checkpoint), "--metrics", ",".join(OFFLINE_METRICS), "-n", "6", "--gen-seeds", "1", "--max-real", "12",
        "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    scores = next(iter(report["models"].values()))["over_generation_seeds"]
    for name in OFFLINE_METRICS:
        assert len(scores[name]["values"]) == 1 and all(_finite(v) for v in scores[name]["values"]), name
        assert scores[name]["n_fake"] == 6 and scores[name]["n_real"] == 12
        assert _finite(report["baseline_real_vs_real"][name]["value"]), name
    prc = scores["precision-recall"]["extras"]
    assert {"precision", "recall"} <= set(prc) and all(0.0 <= prc[k] <= 1.0 for k in ("precision", "recall"))
    markdown = (out / "report.md").read_text()
    assert "precision-recall extras" in markdown and "precision " in markdown and "recall " in markdown
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["metric"] for r in rows}) == sorted(OFFLINE_METRICS) and len(rows) == len(OFFLINE_METRICS)
    assert all(r["precision"] and r["recall"] for r in rows if r["metric"] == "precision-recall")


def test_sweep_with_every_offline_metric(tmp_path: Path, weights: Path) -> None:
    results = sweep(TINY, {"images": [16]}, tmp_path / "sweep", metrics=OFFLINE_METRICS, eval_n=6, max_real=12, device="cpu")
    row = results["rows"][0]
    for name in OFFLINE_METRICS:
        assert _finite(row["metrics"][name]["mean"]) and row["metrics"][name]["n_fake"] == 6, name
        assert _finite(row["baseline"][name]["value"]), name
    assert {"precision", "recall"} <= set(row["metrics"]["precision-recall"]["extras"])
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "precision " in report and "recall " in report
    with open(tmp_path / "sweep" / "results.csv") as f:
        flat = next(csv.DictReader(f))
    assert all(flat[name] for name in OFFLINE_METRICS) and flat["precision-recall_precision"] and flat["precision-recall_recall"]


@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_isc_offline_is_one_clear_error_before_training(tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GANZOO_OFFLINE", "1")
    config = tmp_path / "tiny.toml"
    config.write_text('arch = "dcgan"\nsteps = 1\nbatch_size = 8\nimages = 16\n')
    out = tmp_path / "out"
    args = [command, str(config)] if command == "compare" else [command, "--config", str(config), "--vary", "images=16"]
    result = CliRunner().invoke(ganzoo.cli.build_app(), [*args, "--metrics", "isc", "--device", "cpu", "--out", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in result.output, result.output
    assert "inception score" in errors[0].lower(), result.output
    assert not (out / "runs").exists()


def test_augment_refuses_a_model_of_other_data(tmp_path: Path, image_folder: Path, tiny_checkpoint: Path) -> None:
    """`augment` added any checkpoint's images under --label: phantoms as covid, normal as covid."""
    cases = [
        (tiny_checkpoint, "was trained on synthetic data (synthetic-cxr), not on real images"),
        (train_on(image_folder, "b", tmp_path / "run-b"), "was trained on label 'b'"),
        (train_on(image_folder, None, tmp_path / "run-ab"), "was trained without --label (on every image of its data, whatever the class)"),
    ]
    root = image_folder.resolve()
    for checkpoint, problem in cases:
        result = CliRunner().invoke(ganzoo.cli.build_app(), ["augment", str(checkpoint), "--data", str(image_folder), "--label", "a",
                                                             "--to-count", "14", "--out", str(tmp_path / "aug"), "--device", "cpu"])
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
        assert result.output == (f"error: {checkpoint} {problem}: its images are not 'a' images of {root}; use a checkpoint "
                                 f"trained with --data {root} --label a, or pass --allow-mismatch\n")
        assert not (tmp_path / "aug").exists()
    other = tmp_path / "copy"
    shutil.copytree(image_folder, other)
    with pytest.raises(GanzooError, match=f"was trained on {image_folder}: its images are not 'a' images of {other.resolve()}"):
        augment(train_on(image_folder, "a", tmp_path / "run-a"), other, "a", 14, tmp_path / "aug", device="cpu")
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["augment", str(tiny_checkpoint), "--data", str(image_folder), "--label", "a",
                                                         "--to-count", "14", "--out", str(tmp_path / "aug"), "--device", "cpu", "--allow-mismatch"])
    assert result.exit_code == 0, result.output
    assert "adding its images as 'a' anyway (--allow-mismatch)" in result.output
    manifest = json.loads((tmp_path / "aug" / "manifest.json").read_text())
    assert manifest["mismatch"] == cases[0][1] and manifest["counts"]["a"] == {"real": 12, "synthetic": 2}


def test_augment_refuses_names_outside_the_data(tmp_path: Path, image_folder: Path, tiny_checkpoint: Path) -> None:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    for i, source in enumerate(sorted((image_folder / "a").iterdir())[:3]):
        (data / "a" / f"x{i}.png").write_bytes(source.read_bytes())
    (tmp_path / "outside.png").write_bytes((image_folder / "b" / "b-00.png").read_bytes())
    (data / "metadata.csv").write_text("file,label\na/x0.png,a\na/x1.png,a\n../outside.png,b\n")
    out = tmp_path / "runs" / "aug"
    with pytest.raises(GanzooError, match="outside the data directory"):
        augment(tiny_checkpoint, data, "a", 4, out, device="cpu")
    assert not (tmp_path / "runs" / "outside.png").exists() and not out.exists()
    with pytest.raises(GanzooError, match="outside the data directory"):
        inside_name(Record(data / "/etc/passwd.png", "b"), data)
    assert inside_name(Record(data / "a" / "." / "x0.png", "a"), data).as_posix() == "a/x0.png"
