"""What a run tells the user: refusing to train into an earlier run, nothing-to-do resumes,
progress without a terminal, the closing summary, the loss curve, and a missing plugin named."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

import ganzoo
from ganzoo.api import GanzooError
from ganzoo.checkpoint import load_gan
from ganzoo.cli import build_app
from ganzoo.errors import CheckpointError
from tiny import TINY


def values(tmp_path: Path, **extra):
    return {**TINY, "out": str(tmp_path / "run"), **extra}


def test_a_new_run_is_refused_inside_an_earlier_one(tmp_path):
    ganzoo.train(values(tmp_path), quiet=True)
    with pytest.raises(GanzooError, match=r"already holds a run \(checkpoints, samples, last, log.jsonl, loss.png\): continue it with --resume .*--overwrite"):
        ganzoo.train(values(tmp_path), quiet=True)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    checkpoint = ganzoo.train(values(tmp_path, overwrite=True, steps=1), quiet=True)
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1]  # the earlier run's log is gone, not appended to
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-00000001"]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine" and load_gan(checkpoint)


def test_resume_auto_starts_over_a_run_killed_before_its_first_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / ".step-00000001.tmp-123").mkdir(parents=True)  # a half-written first checkpoint
    (run / "log.jsonl").write_text('{"step": 1}\n')
    (run / "notes.txt").write_text("mine")
    checkpoint = ganzoo.train(values(tmp_path, resume="auto"), quiet=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002"]
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert (run / "notes.txt").read_text() == "mine" and load_gan(checkpoint)
    (run / "checkpoints").rename(tmp_path / "moved")  # a `last` or `best` may still hold work: refused, not removed
    with pytest.raises(GanzooError, match="already holds a run"):
        ganzoo.train(values(tmp_path, resume="auto"), quiet=True)


def test_resume_accepts_the_same_data_folder_spelled_another_way(tmp_path, image_folder, monkeypatch):
    monkeypatch.chdir(image_folder.parent)
    ganzoo.train(values(tmp_path, data=str(image_folder), steps=1), quiet=True)
    assert ganzoo.train(values(tmp_path, data=image_folder.name, steps=2, resume="auto"), quiet=True).name == "step-00000002"
    with pytest.raises(GanzooError, match="--data cannot change on --resume"):
        ganzoo.train(values(tmp_path, data=str(tmp_path), steps=3, resume="auto"), quiet=True)


def test_resuming_a_finished_run_has_nothing_to_do(tmp_path, caplog):
    checkpoint = ganzoo.train(values(tmp_path), quiet=True)
    before = (checkpoint / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="ganzoo"):
        again = ganzoo.train({"resume": str(tmp_path / "run")}, quiet=True)
    assert again == checkpoint and (checkpoint / "model.safetensors").stat().st_mtime_ns == before
    assert "nothing to do" in caplog.text and "at step 2 of 2" in caplog.text


def test_progress_reaches_a_callback_and_the_run_draws_its_loss_curve(tmp_path):
    seen = []
    ganzoo.train(values(tmp_path, steps=3), on_progress=seen.append)
    assert [r["step"] for r in seen] == [1, 2, 3] and all("d_loss" in r and "images_per_s" in r for r in seen)
    curve = cv2.imread(str(tmp_path / "run" / "loss.png"))
    assert curve is not None and curve.shape[2] == 3 and (curve < 250).any()
    grid = cv2.imread(str(next((tmp_path / "run" / "samples").glob("*.png"))), cv2.IMREAD_UNCHANGED)
    assert grid.ndim == 2  # a grayscale model's grid is a one-channel PNG, not RGB


def test_without_a_terminal_the_cli_prints_progress_lines_and_a_summary(tmp_path, monkeypatch):
    monkeypatch.setattr("ganzoo.loss_window.PROGRESS_EVERY_S", 0.0)
    result = CliRunner().invoke(build_app(), ["train", "--images", "16", "--batch-size", "8", "--steps", "2", "--log-every", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "step 1/2 (epoch" in result.output and "step 2/2 (epoch" in result.output and "img/s" in result.output
    assert "trained 2 step(s) in" in result.output and "loss curve:" in result.output
    assert "one epoch = 2 generator step(s) x 1 critic batch(es) of 8 = 16 real images = 1.00 pass(es) over the 16 images" in result.output


def test_the_epoch_definition_says_when_an_epoch_is_more_than_one_pass(tmp_path):
    from ganzoo.trainer import Trainer
    from tiny import tiny_config

    trainer = Trainer(tiny_config(tmp_path, arch="wgan-gp", images=16, batch_size=8))
    assert trainer.epoch_definition() == "one epoch = 1 generator step(s) x 5 critic batch(es) of 8 = 40 real images = 2.50 pass(es) over the 16 images"


def test_a_checkpoint_names_the_plugin_it_needs(tmp_path):
    checkpoint = ganzoo.train(values(tmp_path, steps=1), quiet=True)
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["provided_by"]["losses"]["plugin"] == "dcgan" and config["provided_by"]["losses"]["distribution"] == "ganzoo"
    config["loss"] = "hinge"
    config["provided_by"]["losses"] = {"name": "hinge", "plugin": "hinge", "distribution": "ganzoo-hinge", "version": "0.1.0"}
    (checkpoint / "config.json").write_text(json.dumps(config))
    message = "loss 'hinge' came from plugin 'hinge' (ganzoo-hinge 0.1.0), which is not installed here: pip install 'ganzoo-hinge==0.1.0'"
    with pytest.raises(CheckpointError, match=__import__("re").escape(message)):
        load_gan(checkpoint)
    with pytest.raises(GanzooError, match="pip install 'ganzoo-hinge==0.1.0'"):
        ganzoo.train({"resume": str(tmp_path / "run"), "steps": 2}, quiet=True)
