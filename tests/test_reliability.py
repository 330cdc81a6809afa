"""Crash safety, exact resume after SIGKILL, signals, numerical faults, bad input."""

import errno
import os
import random
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from typer.testing import CliRunner

import ganzoo
from ganzoo.cli import build_app
from ganzoo.config import TrainConfig
from ganzoo.errors import GanzooError
from ganzoo.registry import NAME_PATTERN, Registry
from ganzoo.trainer import Trainer

TRAIN = ["train", "--arch", "dcgan", "--images", "16", "--batch-size", "8", "--device", "cpu", "--seed", "3"]


def env(tmp_path):
    # One thread in every process so CPU results are bit-identical across processes.
    return {**os.environ, "GANZOO_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def final_tensors(run):
    last = run / "last"
    return load_file(str(last / "model.safetensors")), load_file(str(last / "trainer_state.safetensors"))


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    steps = ["--steps", "12", "--checkpoint-every", "1"]
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "ganzoo", *TRAIN, *steps, "--out", str(reference)], env=env(tmp_path), check=True, capture_output=True)

    run = tmp_path / "killed"
    rng = random.Random(1234)
    kills = during_write = 0
    for attempt in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ganzoo", *TRAIN, *steps, "--out", str(run), "--resume", "auto"],
            env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        if kills < 6:
            deadline = time.time() + 60
            if kills % 2:
                # Odd kills land inside a checkpoint write: as soon as its temp directory appears.
                while proc.poll() is None and not list(run.glob("checkpoints/.step-*.tmp-*")) and time.time() < deadline:
                    time.sleep(0.001)
            else:
                # Even kills land at a random moment once training is under way.
                while proc.poll() is None and not (run / "log.jsonl").exists() and time.time() < deadline:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 1.5))
            if proc.poll() is None:
                writing = bool(list(run.glob("checkpoints/.step-*.tmp-*")))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                during_write += writing
                continue
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr.decode()
        break
    assert kills >= 4 and during_write >= 1
    weights, state = final_tensors(run)
    ref_weights, ref_state = final_tensors(reference)
    assert weights.keys() == ref_weights.keys() and state.keys() == ref_state.keys()
    assert all(torch.equal(weights[k], ref_weights[k]) for k in weights)
    assert all(torch.equal(state[k], ref_state[k]) for k in state)
    print(f"kills={kills} during_checkpoint_write={during_write}")


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganzoo", *TRAIN, "--steps", "100000", "--out", str(run)],
        env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while not (run / "log.jsonl").exists() or not (run / "log.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM at step" in stderr and f"--resume {run}" in stderr
    assert "Traceback" not in stderr
    ganzoo.load(str(run))  # the saved checkpoint is complete


def test_half_written_checkpoint_is_skipped(tmp_path):
    run = tmp_path / "run"
    base = {"arch": "dcgan", "images": 16, "batch_size": 8, "device": "cpu", "out": str(run), "checkpoint_every": 1}
    Trainer(TrainConfig.from_dict({**base, "steps": 4})).fit()
    newest = run / "checkpoints" / "step-00000004"
    (newest / "trainer_state.safetensors").write_bytes(b"\x00" * 5)  # damaged
    resumed = ganzoo.train({**base, "steps": 6, "resume": str(run), "out": None})
    assert resumed.name == "step-00000006"
    # It restarted from step 2, the newest complete checkpoint: 4 more steps were taken.
    assert (run / "checkpoints" / "step-00000006" / "config.json").exists()


def test_on_nan_skip_counts_and_continues(tmp_path, monkeypatch):
    from ganzoo_dcgan.model import BCELoss

    original = BCELoss.generator_loss
    calls = {"n": 0}

    def sometimes_nan(self, d, fake):
        calls["n"] += 1
        loss = original(self, d, fake)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(BCELoss, "generator_loss", sometimes_nan)
    config = TrainConfig.from_dict({"arch": "dcgan", "images": 16, "batch_size": 8, "steps": 3, "device": "cpu", "out": str(tmp_path / "run"), "on_nan": "skip"})
    trainer = Trainer(config)
    trainer.fit()
    assert trainer.nan_skips == 1 and trainer.step == 3
    assert all(torch.isfinite(p).all() for p in trainer.gan.parameters())


def test_nan_weights_are_never_saved(tmp_path):
    config = TrainConfig.from_dict({"arch": "dcgan", "images": 16, "batch_size": 8, "steps": 1, "device": "cpu", "out": str(tmp_path / "run")})
    trainer = Trainer(config)
    trainer.fit()
    with torch.no_grad():
        trainer.gan.generator[0].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ganzoo.errors.TrainingDiverged, match="weight generator.0.weight is not finite"):
        trainer.save()
    assert torch.isfinite(ganzoo.load(str(tmp_path / "run")).generator[0].weight).all()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import ganzoo.checkpoint as ck

    config = TrainConfig.from_dict({"arch": "dcgan", "images": 16, "batch_size": 8, "steps": 2, "device": "cpu", "out": str(tmp_path / "run"), "checkpoint_every": 1})
    trainer = Trainer(config)
    trainer.fit()
    before = ganzoo.load(str(tmp_path / "run")).sample(2)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "save_file", full)
    trainer.step += 1
    with pytest.raises(GanzooError, match="No space left on device; the previous checkpoint .*step-00000002 is intact"):
        trainer.save()
    monkeypatch.undo()
    assert torch.equal(ganzoo.load(str(tmp_path / "run")).sample(2), before)
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]


# -- bad input through the CLI: one clear line, exit code 2, no traceback ----------------------

def bad_corpus(root):
    """Every kind of bad file, written here: zero-byte, text, truncated, huge, 16-bit, RGBA."""
    root.mkdir()
    good = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    cv2.imwrite(str(root / "good.png"), good)
    data = (root / "good.png").read_bytes()
    (root / "zero.png").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a jpeg")
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(root / "huge.png"), np.zeros((10_500, 10_500), np.uint8))
    cv2.imwrite(str(root / "deep16.png"), (good.astype(np.uint16) * 257))
    cv2.imwrite(str(root / "rgba.png"), np.dstack([good, good, good, np.full_like(good, 255)]))
    return root


def cli(*args, **env_vars):
    return CliRunner().invoke(build_app(), [str(a) for a in args], env={"COLUMNS": "300", **env_vars})


def test_bad_files_are_skipped_and_counted(tmp_path):
    root = bad_corpus(tmp_path / "corpus")
    result = cli("train", "--data", root, "--steps", "1", "--batch-size", "2", "--device", "cpu", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "skipped 4 unreadable file(s)" in result.output
    import json

    config = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert config["dataset"]["images"] == 3 and config["dataset"]["skipped"] == 4


@pytest.mark.parametrize(
    "case, message",
    [
        ("only_bad", "no usable image in"),
        ("empty", "no image files"),
        ("no_columns", r"lacks column\(s\) file, label"),
        ("label_nothing", "no image in .* has label 'covid'; labels there: normal"),
        ("not_writable", "cannot write to output directory"),
        ("pickle", "never loaded"),
        ("bogus_safetensors", "bogus safetensors header"),
        ("bad_betas", "--betas must be two numbers"),
        ("bad_loss_arg", "--loss-arg must be KEY=VALUE"),
        ("negative_images", "images must be >= 1"),
        ("zero_lr", "lr must be > 0"),
        ("bad_device", "unknown device 'gpu7'"),
        ("resume_nothing", "no complete checkpoint to resume"),
    ],
)
def test_bad_input_messages(tmp_path, case, message):
    import re

    folder = tmp_path / "data"
    folder.mkdir()
    args = ["train", "--steps", "1", "--batch-size", "2", "--device", "cpu", "--out", tmp_path / "run"]
    if case == "only_bad":
        (folder / "a.png").write_bytes(b"")
        (folder / "b.png").write_text("x")
        args += ["--data", folder]
    elif case == "empty":
        args += ["--data", folder]
    elif case in ("no_columns", "label_nothing"):
        cv2.imwrite(str(folder / "a.png"), np.zeros((20, 20), np.uint8))
        header = "name,class" if case == "no_columns" else "file,label"
        (folder / "metadata.csv").write_text(f"{header}\na.png,normal\n")
        args += ["--data", folder, "--label", "covid"]
    elif case == "not_writable":
        (tmp_path / "a_file").write_text("")
        args = ["train", "--steps", "1", "--images", "4", "--device", "cpu", "--out", tmp_path / "a_file" / "run"]
    elif case == "pickle":
        (tmp_path / "model.pt").write_bytes(b"\x80\x04")
        args = ["generate", tmp_path / "model.pt"]
    elif case == "bogus_safetensors":
        ckpt = tmp_path / "ckpt"
        ckpt.mkdir()
        (ckpt / "config.json").write_text('{"format_version": 1, "architecture": "dcgan", "model_args": {"resolution": 64, "channels": 1, "noise_dim": 100}}')
        (ckpt / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
        args = ["generate", ckpt]
    elif case == "bad_betas":
        args += ["--betas", "0.5"]
    elif case == "bad_loss_arg":
        args += ["--loss-arg", "gamma"]
    elif case == "negative_images":
        args += ["--images", "-3"]
    elif case == "zero_lr":
        args += ["--lr", "0"]
    elif case == "bad_device":
        args += ["--device", "gpu7"]
    elif case == "resume_nothing":
        args = ["train", "--resume", folder]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output


# -- property-based ---------------------------------------------------------------------------

values = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=True), st.text(max_size=8), st.lists(st.floats(0, 1), max_size=3))
keys = st.one_of(st.sampled_from([f.replace("_", "-") for f in TrainConfig.__dataclass_fields__] + list(TrainConfig.__dataclass_fields__)), st.text(max_size=10))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=6))
def test_config_parsing_accepts_or_says_why(mapping):
    try:
        config = TrainConfig.from_dict(mapping, source="test.toml")
    except GanzooError as error:
        assert str(error)
        return
    config.validate()
    assert config.batch_size >= 1 and config.channels in (1, 3)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_registry_names_are_validated(name):
    reg = Registry("loss")
    try:
        reg.register(name, 1, plugin="p")
    except GanzooError:
        assert not NAME_PATTERN.match(name)
    else:
        assert NAME_PATTERN.match(name) and reg.get(name) == 1 and name == name.lower() and ".." not in name and "/" not in name
