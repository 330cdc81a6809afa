"""DiffAugment (built-in plugin): differentiable, shape- and range-keeping, per image as the
reference specifies, drawn only from the trainer's generator, and applied to real and fake."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
import torch
import yaml

from ganzoo.augment import AugmentedDiscriminator, Augmentation, Transform, build_augmentation
from ganzoo.card import model_card
from ganzoo.config import TrainConfig
from ganzoo.errors import GanzooError
from ganzoo.hookspecs import Register, hookimpl
from ganzoo.plugins import register_plugin, registry, unregister_plugin
from ganzoo.trainer import Trainer
from tiny import tiny_config
from ganzoo_diffaugment.transforms import (
    DEFAULT_POLICY,
    DiffAugment,
    rand_brightness,
    rand_contrast,
    rand_cutout,
    rand_saturation,
    rand_translation,
)

POLICIES = ["color", "translation", "cutout", "color,translation,cutout"]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 6, channels: int = 1, h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    """Images in [-1, 1], like the generator's output and the scaled reals."""
    return torch.rand(n, channels, h, w, generator=seeded(seed)) * 2 - 1


def tiny(tmp_path: Path, **kwargs: object) -> TrainConfig:
    return tiny_config(tmp_path, **{"images": 4, "batch_size": 2, **kwargs})


def test_registered_and_selected_by_spec() -> None:
    entry = registry("augmentations").entry("diffaugment")
    assert entry.plugin == "diffaugment" and isinstance(entry.obj, Augmentation)
    assert build_augmentation("diffaugment:color,translation,cutout") == DiffAugment(("color", "translation", "cutout"))
    assert build_augmentation("diffaugment:cutout").policy == ("cutout",)
    assert build_augmentation("diffaugment").policy == DEFAULT_POLICY
    with pytest.raises(GanzooError, match="no policy 'flip'; choose from color, translation, cutout"):
        build_augmentation("diffaugment:color,flip")


def test_off_by_default(tmp_path: Path) -> None:
    assert TrainConfig().augment is None
    trainer = Trainer(tiny(tmp_path))
    assert trainer.discriminator is trainer.gan.discriminator


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shape", [(4, 1, 64, 64), (3, 3, 32, 32), (2, 1, 33, 17), (1, 1, 8, 8)])
def test_keeps_shape_dtype_and_is_finite(policy: str, shape: tuple[int, int, int, int]) -> None:
    x = images(*shape)
    y = build_augmentation(f"diffaugment:{policy}")(x, seeded())
    assert y.shape == x.shape and y.dtype == x.dtype and y.is_contiguous()
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("policy", POLICIES)
def test_differentiable(policy: str) -> None:
    """Exact gradients (gradcheck) for fixed random parameters: re-seed on every call."""
    transform = build_augmentation(f"diffaugment:{policy}")
    x = images(2, 1, 8, 8).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: transform(t, seeded(3)), (x,))


def test_gradient_reaches_every_image_and_only_its_own() -> None:
    """Each image is transformed on its own: output i depends on input i and no other."""
    x = images(4, 1, 32, 32).requires_grad_(True)
    y = DiffAugment()(x, seeded())
    for i in range(4):
        (grad,) = torch.autograd.grad(y[i].sum(), x, retain_graph=True)
        assert grad[i].abs().sum() > 0
        assert all(grad[j].abs().sum() == 0 for j in range(4) if j != i)


def test_whole_batch_each_image_with_its_own_draw() -> None:
    """Every image is augmented (no skip probability); identical inputs get different draws."""
    x = images(1, 1, 32, 32).expand(16, -1, -1, -1).contiguous()
    y = DiffAugment()(x, seeded())
    assert all(not torch.equal(y[i], x[i]) for i in range(16))
    assert not any(torch.equal(y[i], y[j]) for i, j in itertools.combinations(range(16), 2))


def test_color_is_brightness_then_contrast_on_gray() -> None:
    """Gray: saturation is a no-op; out = mean + c (x - mean(x)), mean shifted by b, b in [-0.5, 0.5), c in [0.5, 1.5)."""
    x = images(64, 1, 16, 16)
    assert torch.allclose(rand_saturation(x, seeded()), x, atol=1e-6)
    y = build_augmentation("diffaugment:color")(x, seeded())
    dims = (1, 2, 3)
    x_centred, y_centred = x - x.mean(dims, keepdim=True), y - y.mean(dims, keepdim=True)
    b = y.mean(dims) - x.mean(dims)
    c = y_centred.flatten(1).norm(dim=1) / x_centred.flatten(1).norm(dim=1)
    assert torch.allclose(y_centred, c.view(-1, 1, 1, 1) * x_centred, atol=1e-5)
    assert b.min() >= -0.5 - 1e-6 and b.max() < 0.5 + 1e-6 and b.std() > 0.1
    assert c.min() >= 0.5 - 1e-6 and c.max() < 1.5 + 1e-6 and c.std() > 0.1
    # Hence for inputs in [-1, 1]: |brightness| <= 1.5 and after contrast |out| <= 1.5 * (2 * 1.5 - 1) = 3.
    assert y.abs().max() <= 3.0


def test_saturation_on_color_images_keeps_the_per_pixel_mean() -> None:
    x = images(8, 3, 16, 16)
    y = rand_saturation(x, seeded())
    assert torch.allclose(y.mean(dim=1), x.mean(dim=1), atol=1e-6)
    assert not torch.allclose(y, x)


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[r, c] = image[r + dy, c + dx], zero outside."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    rows, cols = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    out[..., rows, cols] = image[..., rows.start + dy : rows.stop + dy, cols.start + dx : cols.stop + dx]
    return out


@pytest.mark.parametrize("h, w", [(32, 32), (64, 40)])
def test_translation_is_a_zero_filled_shift_within_an_eighth(h: int, w: int) -> None:
    x = images(12, 3, h, w)
    y = rand_translation(x, seeded())
    limit_h, limit_w = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
    shifts = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy, dx in itertools.product(range(-limit_h, limit_h + 1), range(-limit_w, limit_w + 1)) if torch.equal(_shift(x[i], dy, dx), y[i])]
        assert found, f"image {i} is not a shift of at most ({limit_h}, {limit_w}) pixels"
        shifts.add(found[0])
    assert len(shifts) > 1
    assert y.min() >= min(x.min(), 0) and y.max() <= max(x.max(), 0)


@pytest.mark.parametrize("h, w", [(32, 32), (33, 17)])
def test_cutout_zeros_one_clipped_square_of_half_size(h: int, w: int) -> None:
    x = images(32, 3, h, w) + 3  # no zeros in the input, so every zero is the hole
    y = rand_cutout(x, seeded())
    size_h, size_w = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    for i in range(len(x)):
        hole = y[i] == 0
        assert torch.equal(hole[0:1].expand_as(hole), hole), "the hole is the same in every channel"
        assert torch.equal(y[i][~hole], x[i][~hole])
        rows, cols = hole[0].any(1).nonzero().flatten(), hole[0].any(0).nonzero().flatten()
        assert 0 < len(rows) <= size_h and 0 < len(cols) <= size_w
        assert hole[0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all(), "the hole is one rectangle"
        touches_border = rows.min() == 0 or rows.max() == h - 1 or cols.min() == 0 or cols.max() == w - 1
        assert touches_border or (len(rows), len(cols)) == (size_h, size_w), "only the border clips the square"


def test_randomness_comes_only_from_the_given_generator() -> None:
    x = images()
    state = torch.random.get_rng_state()
    first = DiffAugment()(x, seeded(7))
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG must stay untouched"
    assert torch.equal(first, DiffAugment()(x, seeded(7)))
    assert not torch.equal(first, DiffAugment()(x, seeded(8)))
    assert DiffAugment()(x, None).shape == x.shape  # no generator: the global RNG, still works


def test_ops_are_individually_usable() -> None:
    x = images()
    for op in (rand_brightness, rand_saturation, rand_contrast, rand_translation, rand_cutout):
        assert op(x, seeded()).shape == x.shape


@pytest.fixture
def spy_augmentation() -> Iterator[list[torch.Tensor]]:
    """An augmentation that records every batch the discriminator is shown, then applies DiffAugment."""
    seen: list[torch.Tensor] = []

    def build(options: list[str]) -> Transform:
        inner = DiffAugment(tuple(options) or DEFAULT_POLICY)

        def transform(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
            seen.append(x)
            return inner(x, rng)

        return transform

    @hookimpl
    def ganzoo_register_augmentations(register: Register) -> None:
        register("spy", Augmentation(build=build))

    register_plugin(SimpleNamespace(ganzoo_register_augmentations=ganzoo_register_augmentations), name="spy-plugin")
    try:
        yield seen
    finally:
        unregister_plugin("spy-plugin")


def test_trainer_augments_real_and_fake_in_both_steps(tmp_path: Path, spy_augmentation: list[torch.Tensor]) -> None:
    trainer = Trainer(tiny(tmp_path, augment="spy:color,translation,cutout"))
    assert isinstance(trainer.discriminator, AugmentedDiscriminator) and trainer.discriminator.rng is trainer.rng
    trainer.training_step()
    real, fake_d, fake_g = spy_augmentation  # bce: D(real), D(fake) in the D step, D(fake) in the G step
    assert torch.equal(real, trainer.real_batch(0))
    assert not fake_d.requires_grad and fake_g.requires_grad  # the G step differentiates through the transform
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.gan.generator.parameters() if p.dim() > 1)


def test_recorded_in_config_and_model_card(tmp_path: Path) -> None:
    spec = "diffaugment:color,translation,cutout"
    trainer = Trainer(tiny(tmp_path, augment=spec, steps=1))
    config = trainer.checkpoint_config()
    assert config["training"]["augment"] == spec
    front = yaml.safe_load(model_card(config).split("---\n")[1])
    assert front["augment"] == spec


def test_resume_with_augmentation_is_exact(tmp_path: Path) -> None:
    """The transform draws from the trainer's saved generator, so 1 + 1 steps == 2 steps."""
    spec = "diffaugment:color,translation,cutout"
    straight = Trainer(tiny(tmp_path / "a", augment=spec))
    for _ in range(2):
        straight.training_step()
    first = Trainer(tiny(tmp_path / "b", augment=spec))
    first.training_step()
    checkpoint = first.save()
    resumed = Trainer(tiny(tmp_path / "b", augment=spec))
    resumed.load_state(checkpoint)
    resumed.training_step()
    reference = straight.gan.state_dict()
    for key, value in resumed.gan.state_dict().items():
        assert torch.equal(value, reference[key]), key
