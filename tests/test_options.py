"""Training options declared once: the table, the CLI flags, validation, and what resume accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganzoo.api import Architecture, GanzooError, Register, build_loss, conv_generator, hookimpl, init_dcgan_weights
from ganzoo.cli import build_app
from ganzoo.config import TrainConfig, command_line, declared_options, options_table, parse_option
from ganzoo.plugins import register_plugin, unregister_plugin
from ganzoo.runs import train
from ganzoo.trainer import Trainer
from tiny import TINY

REPO = Path(__file__).resolve().parents[1]
TABLE = re.compile(r"<!-- options-table.*?-->\n(.*?)<!-- /options-table -->", re.DOTALL)


def tiny(tmp_path: Path, **values):
    return {**TINY, "arch": values.pop("arch", "dcgan"), "steps": 1, "out": str(tmp_path / "run"), **values}


@pytest.mark.parametrize("doc", ["README.md", "docs/usage.md"])
def test_options_tables_are_generated_from_the_declarations(doc):
    found = TABLE.search((REPO / doc).read_text())
    assert found, f"{doc} lacks the generated options table"
    assert found.group(1) == options_table(), (
        f"{doc}'s options table is stale: regenerate it from ganzoo.config.options_table()"
    )


def test_every_declared_option_is_a_train_flag():
    help_text = CliRunner().invoke(build_app(), ["train", "--help"], env={"COLUMNS": "200"}).output
    for f in declared_options():
        flag = "--loss-arg" if f.name == "loss_args" else "--" + f.name.replace("_", "-")
        assert flag in help_text, flag
    assert "--n-critic" in help_text and "--gp-lambda" in help_text


def test_command_line_round_trips_through_parse_option():
    values = {"arch": "wgan-gp", "epochs": 3, "clahe": False, "betas": (0.0, 0.9), "loss_args": {"gp_lambda": 5.0}}
    args = command_line(values)
    assert args == ["--arch", "wgan-gp", "--epochs", "3", "--no-clahe", "--betas", "0.0,0.9", "--loss-arg", "gp_lambda=5.0"]
    assert parse_option("epochs", "3") == 3 and parse_option("betas", "0.0,0.9") == (0.0, 0.9)
    assert parse_option("n_critic", "2") == 2 and parse_option("images", "none") is None
    with pytest.raises(GanzooError, match="unknown key"):
        parse_option("epochz", "3")


def test_aliases_travel_in_loss_args():
    config = TrainConfig.from_dict({"arch": "wgan-gp", "n_critic": 2, "gp_lambda": 5})
    assert config.loss_args == {"n_critic": 2, "gp_lambda": 5.0}
    with pytest.raises(GanzooError, match="given twice"):
        TrainConfig.from_dict({"n_critic": 2, "loss_args": {"n_critic": 3}})


@pytest.mark.parametrize(
    "args, message",
    [
        (["--arch", "wgan-gp", "--loss-arg", "n_critic=0"], "loss 'wgan-gp': n_critic must be an integer >= 1, got 0"),
        (["--arch", "wgan-gp", "--loss-arg", "n_critic=abc"], "loss 'wgan-gp' option n_critic must be an integer, got 'abc'"),
        (["--arch", "wgan-gp", "--loss-arg", "gp_lambda=-5"], "loss 'wgan-gp': gp_lambda must be >= 0, got -5.0"),
        (["--arch", "wgan-gp", "--gp-lambda", "-5"], "loss 'wgan-gp': gp_lambda must be >= 0, got -5.0"),
        (["--seed", str(2**63)], "seed must be an integer in [0, 2**63 - 1], got 9223372036854775808"),
        (["--clahe-tile", "100000"], "clahe_tile must be in [1, 64] (tiles per side; OpenCV allocates per tile), got 100000"),
        (["--noise-dim", "100000000"], "noise_dim must be in [1, 4096], got 100000000"),
    ],
)
def test_bad_values_are_one_line_with_exit_code_2(tmp_path, args, message):
    result = CliRunner().invoke(build_app(), ["train", "--steps", "1", "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines


def test_a_seed_near_the_top_of_the_range_trains(tmp_path):
    """2**62 overflowed the derived generator seeds before; any valid seed now trains."""
    checkpoint = train(tiny(tmp_path, seed=2**62))
    assert json.loads((checkpoint / "config.json").read_text())["training"]["seed"] == 2**62


def test_a_plugin_loss_gets_the_same_checks():
    with pytest.raises(GanzooError, match="loss 'bce': n_critic must be an integer >= 1, got -2"):
        build_loss("bce", n_critic=-2)
    with pytest.raises(GanzooError, match="option n_critic must be an integer, got 1.5"):
        build_loss("bce", n_critic=1.5)


def test_resume_honours_an_option_given_at_its_default(tmp_path):
    first = train(tiny(tmp_path, precision="bf16"))
    assert json.loads((first / "config.json").read_text())["training"]["precision"] == "bf16"
    resumed = train({"resume": str(tmp_path / "run"), "steps": 2, "precision": "fp32"})
    assert json.loads((resumed / "config.json").read_text())["training"]["precision"] == "fp32"


def test_resume_refuses_a_fixed_option_given_at_its_default(tmp_path):
    train(tiny(tmp_path, arch="wgan-gp"))
    with pytest.raises(GanzooError, match=r"--arch cannot change on --resume \(saved: 'wgan-gp', given: 'dcgan'\)"):
        train({"resume": str(tmp_path / "run"), "steps": 2, "arch": "dcgan"})


def test_resume_refuses_a_changed_dataset(tmp_path, image_folder):
    train(tiny(tmp_path, data=str(image_folder), images=None))
    (image_folder / "a" / "a-00.png").unlink()
    with pytest.raises(GanzooError, match="the dataset changed since .* pass --resume-anyway"):
        train({"resume": str(tmp_path / "run"), "steps": 2})
    resumed = train({"resume": str(tmp_path / "run"), "steps": 2, "resume_anyway": True})
    assert json.loads((resumed / "config.json").read_text())["progress"]["step"] == 2


class MinibatchStd(nn.Module):
    """Appends the batch's feature std as a channel: every score depends on the whole batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = x.std(dim=0, keepdim=True).mean().expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([x, std], dim=1)


def coupled_critic(resolution: int, channels: int) -> nn.Module:
    net = nn.Sequential(MinibatchStd(), nn.Conv2d(channels + 1, 1, resolution), nn.Flatten(0))
    net.apply(init_dcgan_weights)
    return net


class CoupledArchitecture:
    @staticmethod
    @hookimpl
    def ganzoo_register_architectures(register: Register) -> None:
        register(
            "coupled",
            Architecture(
                build_generator=lambda resolution, channels, noise_dim=100: conv_generator(noise_dim, [32, 16, 8, 4], channels, bias=False),
                build_discriminator=coupled_critic,
                resolutions=(64,),
                default_loss="wgan-gp",
            ),
        )


def test_only_a_declared_per_sample_critic_is_split_or_joined(tmp_path):
    """A critic without BatchNorm but batch-coupled (minibatch-stddev) is never split into
    micro-batches nor scored on cat(real, fake): the architecture did not declare it per-sample."""
    register_plugin(CoupledArchitecture, name="coupled-test")
    try:
        coupled = Trainer(TrainConfig.from_dict(tiny(tmp_path, arch="coupled", micro_batch=2)))
        assert not coupled.per_sample_critic and not coupled.loss.joint_pass
        real, fake = coupled.real_batch(0), torch.zeros(8, 1, 64, 64)
        assert len(list(coupled._discriminator_terms(coupled.discriminator, real, fake))) == 2  # not chunked
    finally:
        unregister_plugin("coupled-test")
    built_in = Trainer(TrainConfig.from_dict(tiny(tmp_path, arch="wgan-gp", micro_batch=2)))
    assert built_in.per_sample_critic and built_in.loss.joint_pass
    real = built_in.real_batch(0)
    assert len(list(built_in._discriminator_terms(built_in.discriminator, real, torch.zeros_like(real)))) == 8  # 4 chunks x 2 terms
