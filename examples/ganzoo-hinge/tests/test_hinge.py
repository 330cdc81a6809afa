"""The hinge loss and R1 penalty against values worked out by hand, and the plugin's hook."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import torch
from torch import nn

import ganzoo_hinge
from ganzoo.api import GanzooError, build_loss, create_gan, register_plugin, registry, unregister_plugin
from ganzoo_hinge import HingeLoss, hinge_discriminator_loss, hinge_generator_loss

# D(x) = a * ||x||^2 / 2 - 1, so grad_x D = a * x and every value below is easy to work out.
REAL = torch.tensor([[[[1.0, 2.0]]], [[[0.0, -1.0]]]])  # ||x||^2 = 5, 1 -> D = 1.5, -0.5
FAKE = torch.tensor([[[[0.5, 0.5]]], [[[2.0, 0.0]]]])  # ||x||^2 = 0.5, 4 -> D = -0.75, 1.0
HINGE_D = (0.0 + 1.5) / 2 + (0.25 + 2.0) / 2  # relu(1 - D(real)), relu(1 + D(fake)): 1.875
R1 = (5.0 + 1.0) / 2  # mean ||grad||^2 = mean ||x||^2 at a = 1: 3.0


class Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x.pow(2).flatten(1).sum(1) / 2 - 1


@pytest.fixture
def hinge_registered() -> Iterator[None]:
    """Register the plugin in-process unless the installed package already did."""
    if "hinge" in registry("losses"):
        yield
        return
    register_plugin(ganzoo_hinge, name="hinge-under-test")
    try:
        yield
    finally:
        unregister_plugin("hinge-under-test")


def test_hinge_values_by_hand() -> None:
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 0.5])
    # relu(1 - real) = 0, 0.5, 2 and relu(1 + fake) = 0, 1, 1.5: both means are 2.5 / 3.
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(5.0 / 3.0)
    assert hinge_generator_loss(fake).item() == pytest.approx(0.5)


def test_discriminator_loss_without_r1() -> None:
    loss, parts = HingeLoss().discriminator_loss(Quadratic(), REAL, FAKE)
    assert loss.item() == pytest.approx(HINGE_D)
    assert set(parts) == {"d_real", "d_fake"}
    assert parts["d_real"].item() == pytest.approx(0.5) and parts["d_fake"].item() == pytest.approx(0.125)


def test_discriminator_loss_with_r1() -> None:
    loss, parts = HingeLoss(r1_gamma=10.0).discriminator_loss(Quadratic(), REAL, FAKE)
    assert parts["r1"].item() == pytest.approx(R1)
    assert loss.item() == pytest.approx(HINGE_D + 10.0 / 2 * R1)


def test_r1_gradient_reaches_the_discriminator() -> None:
    """d loss / d a = hinge part (-0.5/2 + (0.25 + 2)/2) + (gamma/2) * d(a^2 * 3)/da."""
    discriminator = Quadratic()
    loss, _ = HingeLoss(r1_gamma=10.0).discriminator_loss(discriminator, REAL, FAKE)
    loss.backward()
    assert discriminator.a.grad.item() == pytest.approx(-0.25 + 1.125 + 5.0 * 6.0)


def test_generator_loss() -> None:
    assert HingeLoss().generator_loss(Quadratic(), FAKE).item() == pytest.approx(-(-0.75 + 1.0) / 2)


def test_r1_on_a_real_critic_is_finite() -> None:
    critic = create_gan("wgan-gp", res=64).discriminator
    real, fake = torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 1, 64, 64) * 2 - 1
    loss, parts = HingeLoss(r1_gamma=1.0).discriminator_loss(critic, real, fake)
    loss.backward()
    assert parts["r1"].item() > 0
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters() if p.grad is not None)


def test_options_round_trip_and_validation(hinge_registered: None) -> None:
    loss = build_loss("hinge", r1_gamma=5, n_critic=2)
    assert build_loss("hinge", **loss.loss_args()).loss_args() == {"r1_gamma": 5.0, "n_critic": 2}
    with pytest.raises(GanzooError, match="r1_gamma must be >= 0"):
        build_loss("hinge", r1_gamma=-1.0)
    with pytest.raises(GanzooError, match="r1_gamma must be a number"):
        build_loss("hinge", r1_gamma="abc")
    with pytest.raises(GanzooError, match="n_critic must be an integer >= 1"):
        build_loss("hinge", n_critic=0)


def test_r1_with_batchnorm_warns() -> None:
    discriminator = create_gan("dcgan", res=64).discriminator
    assert HingeLoss().check_discriminator(discriminator) == []
    assert "BatchNorm" in HingeLoss(r1_gamma=1.0).check_discriminator(discriminator)[0]


def test_hook_registers_hinge() -> None:
    seen: list[tuple[str, Any]] = []
    ganzoo_hinge.ganzoo_register_losses(register=lambda name, obj: seen.append((name, obj)))
    assert seen == [("hinge", HingeLoss)]


def test_build_loss_through_ganzoo(hinge_registered: None) -> None:
    loss = build_loss("hinge", r1_gamma=2.0)
    assert isinstance(loss, HingeLoss) and loss.r1_gamma == 2.0
    with pytest.raises(GanzooError, match="gp_lambda"):
        build_loss("hinge", gp_lambda=10.0)
