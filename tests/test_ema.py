"""The generator EMA (`--ema DECAY`): off by default, follows its warmed-up rule at every step
(weights and BatchNorm statistics), is saved next to the raw generator, recorded in config.json
and the card, used for sampling, and after a short run is nearer the trained generator than the
initial one."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ganzoo.checkpoint import load_gan
from ganzoo.config import TrainConfig
from ganzoo.ema import ema_decay
from ganzoo.errors import GanzooError
from ganzoo.runs import train
from ganzoo.trainer import Trainer
from tiny import tiny_config

DECAY = 0.9


def tiny(tmp_path: Path, **kwargs: object) -> TrainConfig:
    """These tests check the averaging itself, so it starts at the first step (--ema-start 0)."""
    return tiny_config(tmp_path, **{"images": 4, "batch_size": 2, "steps": 3, "ema_start": 0, **kwargs})


def test_off_by_default(tmp_path: Path) -> None:
    assert TrainConfig().ema is None
    trainer = Trainer(tiny(tmp_path))
    assert trainer.gan.generator_ema is None
    assert trainer.gan.sampling_generator() is trainer.gan.generator


def test_the_ema_never_changes_what_the_live_generator_learns(tmp_path: Path) -> None:
    """A recipe measured with --ema reproduces the same live generator without it."""
    with_ema, without = Trainer(tiny(tmp_path / "a", ema=DECAY)), Trainer(tiny(tmp_path / "b"))
    with_ema.fit(quiet=True)
    without.fit(quiet=True)
    reference = without.gan.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in with_ema.gan.state_dict().items() if key in reference)


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_decay_must_be_in_the_open_unit_interval(decay: float) -> None:
    with pytest.raises(GanzooError, match="ema must be in"):
        TrainConfig(ema=decay)


@pytest.mark.parametrize("warmup", [10, 1])
def test_ema_follows_the_rule_each_step(tmp_path: Path, warmup: int) -> None:
    """After step t: ema == d * ema_before + (1 - d) * generator with d = min(decay, (1+t)/(warmup+t)),
    for the weights and the BatchNorm running statistics; warmup 1 is the constant decay."""
    trainer = Trainer(tiny(tmp_path, ema=DECAY, ema_warmup=warmup))
    ema, generator = trainer.gan.generator_ema, trainer.gan.generator
    assert ema is not None and ema is not generator
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), generator.state_dict().values()))
    assert not any(p.requires_grad for p in ema.parameters())
    for t in range(3):
        d = min(DECAY, (1 + t) / (warmup + t))
        assert ema_decay(DECAY, warmup, t) == pytest.approx(d)
        before = [x.detach().clone() for x in ema.state_dict().values()]
        trainer.training_step()
        lagging = 0
        for x_before, (key, x_ema), x in zip(before, ema.state_dict().items(), generator.state_dict().values()):
            if x.is_floating_point():
                torch.testing.assert_close(x_ema, d * x_before + (1 - d) * x, rtol=1e-5, atol=1e-6, msg=key)
                lagging += not torch.allclose(x_ema, x)
            else:
                assert torch.equal(x_ema, x), key
        assert lagging > 0, "the EMA must lag the raw weights, not copy them"


def test_a_short_run_ema_is_not_the_initial_generator(tmp_path: Path) -> None:
    """--ema 0.999 for 20 steps: without warm-up the EMA is still ~98% the initial weights (the
    issue's flat grey samples); with it, weights and samples are nearer the trained generator."""
    trainer = Trainer(tiny(tmp_path, ema=0.999, steps=20, lr=1e-3))
    initial = copy.deepcopy(trainer.gan.generator)
    for _ in range(20):
        trainer.training_step()
    ema, live = trainer.gan.generator_ema, trainer.gan.generator

    def distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
        return sum(float((x - y).detach().pow(2).sum()) for x, y in zip(a.parameters(), b.parameters())) ** 0.5

    assert distance(ema, live) < distance(ema, initial) / 2
    z = torch.randn(16, trainer.gan.noise_dim, 1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        samples = {name: net.eval()(z) for name, net in (("ema", ema), ("live", live), ("initial", initial))}
    assert (samples["ema"] - samples["live"]).abs().mean() < (samples["ema"] - samples["initial"]).abs().mean()


def test_before_ema_start_the_ema_is_the_live_generator_then_it_averages(tmp_path: Path) -> None:
    """A run shorter than --ema-start samples exactly what its live generator samples; after the
    start the EMA lags the live weights with the warmed-up decay counted from the start."""
    assert TrainConfig().ema_start == 1000
    assert ema_decay(0.999, 10, 1999, start=1000) == pytest.approx(1000 / 1009) and ema_decay(0.999, 10, 999, start=1000) == 0.0
    trainer = Trainer(tiny(tmp_path, ema=0.999, ema_start=2, steps=4, lr=1e-3))
    ema, live = trainer.gan.generator_ema, trainer.gan.generator
    for step in range(4):
        trainer.training_step()
        same = all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), live.state_dict().values()))
        assert same == (step < 2), f"after step {step + 1}"
    short = Trainer(tiny(tmp_path / "short", ema=0.999, ema_start=1000, steps=3))
    for _ in range(3):
        short.training_step()
    live_only = copy.deepcopy(short.gan)
    live_only.generator_ema = None
    assert torch.equal(short.gan.sample(4, seed=0), live_only.sample(4, seed=0))


def test_a_run_saved_before_ema_start_existed_resumes_averaging_from_the_first_step(tmp_path: Path) -> None:
    checkpoint = train(tiny(tmp_path, ema=DECAY, steps=1), quiet=True)
    config_file = checkpoint / "config.json"
    config = json.loads(config_file.read_text())
    del config["training"]["ema_start"]
    config_file.write_text(json.dumps(config))
    resumed = train(TrainConfig.from_dict({"resume": str(tmp_path), "steps": 2, "device": "cpu"}), quiet=True)
    assert json.loads((resumed / "config.json").read_text())["training"]["ema_start"] == 0


def test_saved_next_to_the_generator_recorded_and_used_for_sampling(tmp_path: Path) -> None:
    trainer = Trainer(tiny(tmp_path, ema=DECAY, steps=1))
    trainer.training_step()
    checkpoint = trainer.save()

    config = json.loads((checkpoint / "config.json").read_text())
    assert config["components"] == ["generator", "discriminator", "generator_ema"]
    assert config["training"]["ema"] == DECAY
    assert config["training"]["ema_warmup"] == 10
    front = yaml.safe_load((checkpoint / "README.md").read_text().split("---\n")[1])
    assert front["ema"] == DECAY

    weights = load_file(str(checkpoint / "model.safetensors"))
    for key, value in trainer.gan.generator_ema.state_dict().items():
        assert torch.equal(weights[f"generator_ema.{key}"], value)
        assert f"generator.{key}" in weights

    loaded = load_gan(checkpoint)
    assert loaded.sampling_generator() is loaded.generator_ema
    ema_samples = loaded.sample(4, seed=1)
    assert torch.equal(ema_samples, trainer.gan.to(memory_format=torch.contiguous_format).sample(4, seed=1))
    loaded.generator_ema = None
    assert not torch.equal(loaded.sample(4, seed=1), ema_samples), "sampling must use the EMA when present"


def test_resume_restores_the_ema_exactly(tmp_path: Path) -> None:
    straight = Trainer(tiny(tmp_path / "a", ema=DECAY, steps=2))
    for _ in range(2):
        straight.training_step()
    first = Trainer(tiny(tmp_path / "b", ema=DECAY, steps=2))
    first.training_step()
    checkpoint = first.save()
    resumed = Trainer(tiny(tmp_path / "b", ema=DECAY, steps=2))
    resumed.load_state(checkpoint)
    resumed.training_step()
    reference = straight.gan.generator_ema.state_dict()
    for key, value in resumed.gan.generator_ema.state_dict().items():
        assert torch.equal(value, reference[key]), key
