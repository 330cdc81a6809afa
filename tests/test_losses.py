import math

import pytest
import torch
from torch import nn

import ganzoo
from ganzoo.losses import build_loss
from ganzoo.errors import GanzooError
from ganzoo_wgan_gp.model import gradient_penalty


class QuadraticCritic(nn.Module):
    """D(x) = c * sum(x^2): grad = 2c x, so the penalty can be computed by hand."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c))

    def forward(self, x):
        return self.c * (x**2).flatten(1).sum(1)


def test_gradient_penalty_equals_hand_computed():
    real = torch.tensor([[[[1.0, 2.0]]], [[[0.0, -1.0]]]])
    fake = torch.tensor([[[[3.0, 0.0]]], [[[1.0, 1.0]]]])
    alpha = torch.tensor([0.25, 0.5]).view(2, 1, 1, 1)
    c = 0.3
    # By hand: xhat_0 = (0.25*1 + 0.75*3, 0.25*2 + 0) = (2.5, 0.5); xhat_1 = (0.5, 0.0)
    norms = [2 * c * math.hypot(2.5, 0.5), 2 * c * math.hypot(0.5, 0.0)]
    expected = sum((g - 1) ** 2 for g in norms) / 2
    gp = gradient_penalty(QuadraticCritic(c), real, fake, alpha)
    assert gp.item() == pytest.approx(expected, rel=1e-6)


def test_gradient_penalty_is_differentiable_wrt_critic():
    critic = QuadraticCritic(0.3)
    x = torch.randn(4, 1, 3, 3)
    gp = gradient_penalty(critic, x, torch.randn_like(x), torch.rand(4, 1, 1, 1))
    gp.backward()
    assert critic.c.grad is not None and critic.c.grad != 0


def test_wgan_gp_loss_parts():
    loss = build_loss("wgan-gp", gp_lambda=10.0)
    critic = QuadraticCritic(0.1)
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    total, parts = loss.discriminator_loss(critic, real, fake, torch.Generator().manual_seed(0))
    # D(real) = 0.4, D(fake) = 0: total = 0 - 0.4 + 10 * gp
    assert total.item() == pytest.approx(-0.4 + 10 * parts["gp"].item(), rel=1e-6)
    assert parts["wasserstein"].item() == pytest.approx(0.4)
    assert loss.generator_loss(critic, real).item() == pytest.approx(-0.4)
    assert loss.n_critic == 5 and loss.optimizer_defaults == {"lr": 1e-4, "betas": (0.0, 0.9)}


def test_bce_loss_equals_formula():
    loss = build_loss("bce")

    class Fixed(nn.Module):
        def forward(self, x):
            return x.flatten(1).mean(1)

    real = torch.full((3, 1, 2, 2), 2.0)
    fake = torch.full((3, 1, 2, 2), -1.0)
    total, _ = loss.discriminator_loss(Fixed(), real, fake)
    expected = -math.log(1 / (1 + math.exp(-2.0))) - math.log(1 - 1 / (1 + math.exp(1.0)))
    assert total.item() == pytest.approx(expected, rel=1e-6)
    # Non-saturating: -log(sigmoid(D(G(z)))).
    assert loss.generator_loss(Fixed(), fake).item() == pytest.approx(-math.log(1 / (1 + math.exp(1.0))), rel=1e-6)


def test_wgan_gp_with_batchnorm_discriminator_warns():
    loss = build_loss("wgan-gp")
    gan = ganzoo.create_gan("dcgan")
    messages = loss.check_discriminator(gan.discriminator)
    assert messages and "BatchNorm" in messages[0]
    assert loss.check_discriminator(ganzoo.create_gan("wgan-gp").discriminator) == []


def test_unknown_loss_option_is_clear():
    with pytest.raises(GanzooError, match="loss 'bce' has no option 'gp_lambda'"):
        build_loss("bce", gp_lambda=10)
