"""The built-in networks against the study's layer lists (../shared/docs/seed-architectures.md)."""

import pytest
import torch
from torch import nn

import ganzoo


def layer_list(module: nn.Module) -> list[tuple]:
    """(type, in, out, kernel, stride, padding, bias) for convs; type name for the rest."""
    rows = []
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            rows.append((type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.bias is not None))
        elif isinstance(m, nn.InstanceNorm2d):
            rows.append(("InstanceNorm2d", m.affine))
        elif isinstance(m, (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid)):
            rows.append(type(m).__name__)
    return rows


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def seed_generator(widths, c, bias):
    rows, cin = [], 100
    for i, w in enumerate(widths):
        rows += [("ConvTranspose2d", cin, w, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias), "BatchNorm2d", "ReLU"]
        cin = w
    return rows + [("ConvTranspose2d", cin, c, 4, 2, 1, bias), "Tanh"]


def seed_dcgan_discriminator(widths, c):
    rows, cin = [], c
    for i, w in enumerate(widths):
        rows.append(("Conv2d", cin, w, 4, 2, 1, False))
        if i > 0:
            rows.append("BatchNorm2d")
        rows.append("LeakyReLU")
        cin = w
    return rows + [("Conv2d", cin, 1, 4, 1, 0, False)]


def seed_critic(widths, c, bias):
    rows, cin = [], c
    for w in widths:
        rows += [("Conv2d", cin, w, 4, 2, 1, bias), ("InstanceNorm2d", False), "LeakyReLU"]
        cin = w
    return rows + [("Conv2d", cin, 1, 4, 1, 0, bias)]


@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_64_matches_seed(channels):
    gan = ganzoo.create_gan("dcgan", res=64, channels=channels)
    assert layer_list(gan.generator) == seed_generator([512, 256, 128, 64], channels, False)
    assert layer_list(gan.discriminator) == seed_dcgan_discriminator([64, 128, 256, 512], channels)
    if channels == 3:  # the PyTorch DCGAN tutorial's printed counts for the same networks
        assert n_params(gan.generator) == 3_576_704
        assert n_params(gan.discriminator) == 2_765_568


@pytest.mark.parametrize("channels", [1, 3])
def test_wgan_gp_64_matches_seed(channels):
    gan = ganzoo.create_gan("wgan-gp", res=64, channels=channels)
    assert layer_list(gan.generator) == seed_generator([512, 256, 128, 64], channels, False)
    assert layer_list(gan.discriminator) == seed_critic([64, 128, 256, 512], channels, False)
    # Critic without norm parameters: conv weights only.
    expected = channels * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 16
    assert n_params(gan.discriminator) == expected


@pytest.mark.parametrize("channels", [1, 3])
def test_wgan_gp_128_matches_seed(channels):
    gan = ganzoo.create_gan("wgan-gp", res=128, channels=channels)
    assert layer_list(gan.generator) == seed_generator([512, 256, 128, 64, 32], channels, True)
    assert layer_list(gan.discriminator) == seed_critic([16, 32, 64, 128, 256], channels, True)
    g_expected = (100 * 512 * 16 + 512) + (512 * 256 * 16 + 256) + (256 * 128 * 16 + 128) + (128 * 64 * 16 + 64) + (64 * 32 * 16 + 32) + (32 * channels * 16 + channels)
    g_expected += 2 * (512 + 256 + 128 + 64 + 32)  # BatchNorm weight + bias
    assert n_params(gan.generator) == g_expected
    d_expected = sum(a * b * 16 + b for a, b in [(channels, 16), (16, 32), (32, 64), (64, 128), (128, 256), (256, 1)])
    assert n_params(gan.discriminator) == d_expected


def test_dcgan_128_has_one_more_block():
    gan = ganzoo.create_gan("dcgan", res=128, channels=1)
    assert layer_list(gan.generator) == seed_generator([512, 256, 128, 64, 32], 1, False)
    assert layer_list(gan.discriminator) == seed_dcgan_discriminator([32, 64, 128, 256, 512], 1)


@pytest.mark.parametrize("arch", ["dcgan", "wgan-gp"])
@pytest.mark.parametrize("res", [64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range(arch, res, channels):
    gan = ganzoo.create_gan(arch, res=res, channels=channels)
    images = gan.sample(3, seed=1)
    assert images.shape == (3, channels, res, res)
    assert images.min() >= -1 and images.max() <= 1
    assert gan.discriminator(images).shape == (3,)


def test_dcgan_init_is_normal_002():
    torch.manual_seed(0)
    gan = ganzoo.create_gan("dcgan")
    weight = gan.generator[3].weight  # second ConvTranspose2d: 512*256*16 values
    assert abs(weight.mean().item()) < 1e-3
    assert weight.std().item() == pytest.approx(0.02, rel=0.02)


def test_unsupported_resolution_names_supported_ones():
    with pytest.raises(ganzoo.errors.GanzooError, match="supported: 64, 128"):
        ganzoo.create_gan("dcgan", res=96)


def test_sample_is_deterministic_per_seed():
    gan = ganzoo.create_gan("dcgan")
    assert torch.equal(gan.sample(4, seed=7), gan.sample(4, seed=7))
    assert not torch.equal(gan.sample(4, seed=7), gan.sample(4, seed=8))
    # An image does not depend on how many are drawn with it (up to float summation order).
    torch.testing.assert_close(gan.sample(4, seed=7)[:2], gan.sample(2, seed=7), rtol=0, atol=1e-5)
