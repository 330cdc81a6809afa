"""`--normalize torch`: the data's mean/std travel with the model and `GAN.sample` undoes them."""

import json
import logging
import math

import pytest
import torch
from torch import nn

import ganzoo
from ganzoo.checkpoint import load_gan, write_checkpoint
from ganzoo.config import TrainConfig
from ganzoo.errors import CheckpointError
from ganzoo.images import to_uint8
from ganzoo.models import seeded_noise
from ganzoo.trainer import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step torch-normalised run on 32 synthetic images: (checkpoint, the data's mean/std)."""
    out = tmp_path_factory.mktemp("normalize") / "run"
    config = TrainConfig.from_dict(
        {"arch": "dcgan", "dataset": "synthetic-cxr", "images": 32, "res": 64, "batch_size": 8, "steps": 2,
         "device": "cpu", "normalize": "torch", "out": str(out)}
    )
    trainer = Trainer(config)
    return trainer.fit(), trainer.data.mean_std()


def copy_checkpoint(src, dst, edit_config=None):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    if edit_config is not None:
        config = json.loads((dst / "config.json").read_text())
        edit_config(config)
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def raw_generator_output(gan, n, seed):
    """What the generator itself gives for `sample(n, seed)`'s noise, in its training units."""
    net = gan.sampling_generator().eval()
    with torch.no_grad():
        return net(seeded_noise(n, gan.noise_dim, seed))


def test_torch_run_saves_the_data_mean_and_std(trained):
    checkpoint, (mean, std) = trained
    saved = json.loads((checkpoint / "config.json").read_text())["normalization"]
    assert saved == {"mean": pytest.approx(mean, abs=1e-12), "std": pytest.approx(std, abs=1e-12)}
    # the synthetic phantoms are far from [-1, 1] scaling, so the test below can tell the difference
    assert abs(mean - 0.5) > 0.05 or abs(std - 0.5) > 0.05
    assert (load_gan(checkpoint).normalization.mean, load_gan(checkpoint).normalization.std) == (saved["mean"], saved["std"])


def test_sample_undoes_the_normalisation(trained):
    checkpoint, (mean, std) = trained
    gan = ganzoo.load(str(checkpoint))
    x = raw_generator_output(gan, 5, seed=7)
    expected = ((x * std + mean) * 2 - 1).clamp(-1, 1)
    assert torch.allclose(gan.sample(5, seed=7), expected, atol=1e-6)
    assert not torch.allclose(gan.sample(5, seed=7), x, atol=1e-3)


def test_constant_generator_gives_the_pixel_it_was_trained_toward(trained):
    """A generator stuck at the normalised value c of pixel p samples as p, not as (c + 1) * 127.5."""
    checkpoint, (mean, std) = trained
    gan = load_gan(checkpoint)
    pixel = round((mean + 0.5 * std) * 255)
    c = (pixel / 255 - mean) / std
    assert 0.2 < c < 0.8
    last = gan.generator[-2]
    constant = nn.ConvTranspose2d(last.in_channels, last.out_channels, 4, 2, 1, bias=True)
    with torch.no_grad():
        constant.weight.zero_()
        constant.bias.fill_(math.atanh(c))
    gan.generator[-2] = constant
    images = to_uint8(gan.sample(3, seed=0))
    assert images.unique().tolist() == [round((c * std + mean) * 255)] == [pixel]


def test_checkpoint_without_normalization_loads_as_none(trained, tmp_path, caplog):
    checkpoint, _ = trained
    old = copy_checkpoint(checkpoint, tmp_path / "old", lambda config: config.pop("normalization"))
    with caplog.at_level(logging.WARNING, logger="ganzoo"):
        gan = load_gan(old)
    assert (gan.normalization.mean, gan.normalization.std) == (0.5, 0.5)
    assert torch.equal(gan.sample(4, seed=1), raw_generator_output(gan, 4, seed=1))
    assert "--normalize torch" in caplog.text


def test_unnormalised_run_samples_the_raw_generator_output(tmp_path):
    checkpoint = ganzoo.train({"arch": "dcgan", "images": 16, "batch_size": 8, "steps": 1, "device": "cpu", "out": str(tmp_path / "run")})
    assert json.loads((checkpoint / "config.json").read_text())["normalization"] == {"mean": 0.5, "std": 0.5}
    gan = load_gan(checkpoint)
    assert torch.equal(gan.sample(4, seed=2), raw_generator_output(gan, 4, seed=2))


def test_rewritten_checkpoint_keeps_the_normalization(trained, tmp_path):
    """Whoever writes a checkpoint of the GAN (the hub's staging does) keeps its normalisation."""
    checkpoint, _ = trained
    gan = load_gan(checkpoint)
    copy = write_checkpoint(tmp_path / "copy", gan, {"format_version": 1, "architecture": "dcgan", "model_args": gan.model_args}, "card")
    assert load_gan(copy).normalization == gan.normalization
    assert torch.equal(load_gan(copy).sample(3, seed=4), gan.sample(3, seed=4))


@pytest.mark.parametrize("bad", [{"mean": 0.4, "std": 0.0}, {"mean": "x", "std": 0.2}, {"mean": 0.4}, [0.4, 0.2]])
def test_bad_normalization_is_refused(trained, tmp_path, bad):
    checkpoint, _ = trained
    broken = copy_checkpoint(checkpoint, tmp_path / "broken", lambda config: config.update(normalization=bad))
    with pytest.raises(CheckpointError, match="normalization"):
        load_gan(broken)
