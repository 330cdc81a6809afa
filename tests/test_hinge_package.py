"""The third-party path, end to end: pip install examples/ganzoo-hinge, list, train.

The package is installed into a throwaway directory that only the test's subprocesses put
on their path (entry points are read from installed metadata), so the environment running
the tests never changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
import torch
from typer.testing import CliRunner

from ganzoo.cli import build_app
from ganzoo.config import TrainConfig
from ganzoo.plugins import plugin_infos, register_plugin, registry, unregister_plugin
from ganzoo.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "examples" / "ganzoo-hinge"
PROJECT = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
DIST, VERSION = PROJECT["name"], PROJECT["version"]


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "250", **env}
    environment.pop("GANZOO_DISABLE_PLUGINS", None)
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=240)


def _ganzoo(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The `ganzoo` console script of this interpreter's environment, as a user runs it."""
    script = Path(sys.executable).with_name("ganzoo")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ganzoo"]
    result = _run([*command, *args], cwd, **env)
    assert result.returncode == 0, f"ganzoo {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _pip(*args: str, cwd: Path) -> None:
    result = _run([sys.executable, "-m", "pip", *args], cwd)
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def _rows(table: str) -> list[dict[str, str]]:
    """The rows of a table as `ganzoo list` / `ganzoo plugins` print it, keyed by column."""
    lines = table.splitlines()
    header = next(line for line in lines if "┃" in line)
    columns = [cell.strip() for cell in header.strip().strip("┃").split("┃")]
    return [
        dict(zip(columns, (cell.strip() for cell in line.strip().strip("│").split("│"))))
        for line in lines
        if line.startswith("│")
    ]


def test_install_list_train(tmp_path: Path) -> None:
    # Build from a copy so no build/ or egg-info lands in the repository.
    source = tmp_path / "ganzoo-hinge"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--no-build-isolation", "--quiet", "--target", str(site), str(source), cwd=tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution(DIST)  # nothing was installed into this environment

    losses = {row["name"]: row for row in _rows(_ganzoo("list", "losses", cwd=tmp_path, **env).stdout)}
    assert losses["hinge"]["plugin"] == "hinge"
    assert losses["hinge"].get("version") == VERSION

    shown = _ganzoo("plugins", cwd=tmp_path, GANZOO_TRACE_PLUGINS="1", **env)
    plugins = {row["name"]: row for row in _rows(shown.stdout)}
    assert plugins["hinge"]["version"] == VERSION
    assert plugins["hinge"]["source"] == f"entry point ({DIST})"
    assert plugins["hinge"]["registered"] == "losses: hinge"
    assert plugins["hinge"]["status"] == "ok"
    assert "loading hinge from ganzoo_hinge" in shown.stderr
    assert "ganzoo_register_losses -> hinge" in shown.stderr

    run = tmp_path / "run"
    _ganzoo("train", "--arch", "dcgan", "--loss", "hinge", "--images", "32", "--steps", "2", "--batch-size", "16", "--out", str(run), cwd=tmp_path, **env)
    config = json.loads((run / "last" / "config.json").read_text())
    assert config["loss"] == "hinge"
    assert config["loss_args"] == {"r1_gamma": 0.0, "n_critic": 1}
    assert config["plugins"]["hinge"] == VERSION
    assert "loss `hinge`" in (run / "last" / "README.md").read_text()

    # The package's own tests, against the installed copy (the cwd holds no ganzoo_hinge).
    own = _run([sys.executable, "-m", "pytest", str(source / "tests"), "-q", "-p", "no:cacheprovider"], tmp_path, **env)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "hinge" not in {row["name"] for row in _rows(_ganzoo("list", "losses", cwd=tmp_path).stdout)}


@pytest.fixture
def hinge_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The package's module registered directly, as a plugin's own tests would do it."""
    monkeypatch.syspath_prepend(str(PACKAGE))
    import ganzoo_hinge

    register_plugin(ganzoo_hinge, name="hinge-in-process", version=VERSION)
    try:
        yield ganzoo_hinge
    finally:
        unregister_plugin("hinge-in-process")
    assert "hinge-in-process" not in {info.name for info in plugin_infos()}


def test_registered_in_process_shows_in_plugins(hinge_in_process: ModuleType) -> None:
    assert registry("losses").entry("hinge").plugin == "hinge-in-process"
    result = CliRunner().invoke(build_app(), ["plugins"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = {r["name"]: r for r in _rows(result.output)}["hinge-in-process"]
    assert (row["version"], row["source"], row["registered"]) == (VERSION, "direct", "losses: hinge")


def test_r1_option_reaches_the_trainer(hinge_in_process: ModuleType, tmp_path: Path) -> None:
    """`loss_args` (the CLI's --loss-arg) turns R1 on; it works through DiffAugment and is saved."""
    config = TrainConfig(arch="wgan-gp", loss="hinge", loss_args={"r1_gamma": 1.0}, augment="diffaugment", images=4, batch_size=2, steps=1, device="cpu")
    trainer = Trainer(config)
    values = trainer.training_step()
    assert values["r1"].item() > 0 and all(torch.isfinite(v) for v in values.values())
    assert trainer.checkpoint_config()["loss_args"] == {"r1_gamma": 1.0, "n_critic": 1}
