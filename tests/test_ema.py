"""The generator EMA (`--ema DECAY`): off by default, follows its formula at every step, is
saved next to the raw generator, recorded in config.json and the card, and used for sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ganzoo.checkpoint import load_gan
from ganzoo.config import TrainConfig
from ganzoo.errors import GanzooError
from ganzoo.trainer import Trainer
from tiny import tiny_config

DECAY = 0.9


def tiny(tmp_path: Path, **kwargs: object) -> TrainConfig:
    return tiny_config(tmp_path, **{"images": 4, "batch_size": 2, "steps": 3, **kwargs})


def test_off_by_default(tmp_path: Path) -> None:
    assert TrainConfig().ema is None
    trainer = Trainer(tiny(tmp_path))
    assert trainer.gan.generator_ema is None
    assert trainer.gan.sampling_generator() is trainer.gan.generator


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_decay_must_be_in_the_open_unit_interval(decay: float) -> None:
    with pytest.raises(GanzooError, match="ema must be in"):
        TrainConfig(ema=decay)


def test_ema_follows_the_formula_each_step(tmp_path: Path) -> None:
    """After every step: ema == decay * ema_before + (1 - decay) * weights; buffers copied."""
    trainer = Trainer(tiny(tmp_path, ema=DECAY))
    ema, generator = trainer.gan.generator_ema, trainer.gan.generator
    assert ema is not None and ema is not generator
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), generator.state_dict().values()))
    assert not any(p.requires_grad for p in ema.parameters())
    for _ in range(3):
        before = [p.detach().clone() for p in ema.parameters()]
        trainer.training_step()
        lagging = 0
        for p_before, p_ema, p in zip(before, ema.parameters(), generator.parameters()):
            torch.testing.assert_close(p_ema, DECAY * p_before + (1 - DECAY) * p.detach(), rtol=1e-5, atol=1e-6)
            lagging += not torch.allclose(p_ema, p)
        assert lagging > 0, "the EMA must lag the raw weights, not copy them"
        for b_ema, b in zip(ema.buffers(), generator.buffers()):
            assert torch.equal(b_ema, b)


def test_saved_next_to_the_generator_recorded_and_used_for_sampling(tmp_path: Path) -> None:
    trainer = Trainer(tiny(tmp_path, ema=DECAY, steps=1))
    trainer.training_step()
    checkpoint = trainer.save()

    config = json.loads((checkpoint / "config.json").read_text())
    assert config["components"] == ["generator", "discriminator", "generator_ema"]
    assert config["training"]["ema"] == DECAY
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
