"""Behaviour of the procedural chest-radiograph phantoms (built-in dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from ganzoo_datasets.phantoms import LABELS, render_phantom, render_phantoms


def _lung_band_medians(images: np.ndarray) -> np.ndarray:
    """Per-image median over the mid-lung rows, lateral to heart and spine."""
    size = images.shape[-1]
    rows = slice(int(0.40 * size), int(0.65 * size))
    left = images[:, rows, int(0.12 * size):int(0.32 * size)]
    right = images[:, rows, int(0.68 * size):int(0.88 * size)]
    band = np.concatenate([left, right], axis=2).reshape(len(images), -1)
    return np.median(band.astype(np.float64), axis=1)


def test_labels_constant() -> None:
    assert LABELS == ("normal", "covid")


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_dtype_and_shape(size: int) -> None:
    images, labels = render_phantoms(3, size, seed=1)
    assert images.dtype == np.uint8
    assert images.shape == (3, size, size)
    assert len(labels) == 3


def test_single_phantom_dtype_and_shape() -> None:
    image = render_phantom(48, np.random.default_rng(0), "covid")
    assert image.dtype == np.uint8
    assert image.shape == (48, 48)


def test_zero_images() -> None:
    images, labels = render_phantoms(0, 32)
    assert images.shape == (0, 32, 32)
    assert images.dtype == np.uint8
    assert labels == []


def test_deterministic_for_same_seed() -> None:
    a, la = render_phantoms(6, 64, seed=7)
    b, lb = render_phantoms(6, 64, seed=7)
    assert a.tobytes() == b.tobytes()
    assert la == lb


def test_other_seed_gives_other_images() -> None:
    a, _ = render_phantoms(6, 64, seed=7)
    b, _ = render_phantoms(6, 64, seed=8)
    for x, y in zip(a, b):
        assert not np.array_equal(x, y)


def test_images_within_a_set_differ() -> None:
    images, _ = render_phantoms(8, 64, seed=3, label="normal")
    flat = {im.tobytes() for im in images}
    assert len(flat) == 8
    mean_abs_diff = np.abs(images[0].astype(int) - images[1].astype(int)).mean()
    assert mean_abs_diff > 3.0


def test_image_i_does_not_depend_on_n() -> None:
    small, small_labels = render_phantoms(3, 64, seed=11)
    large, large_labels = render_phantoms(9, 64, seed=11)
    assert np.array_equal(small, large[:3])
    assert small_labels == large_labels[:3]


@pytest.mark.parametrize("label", LABELS)
def test_requested_label_is_returned(label: str) -> None:
    _, labels = render_phantoms(5, 32, seed=2, label=label)
    assert labels == [label] * 5


def test_mixed_labels_cover_both_classes() -> None:
    _, labels = render_phantoms(10, 32, seed=2)
    assert set(labels) == set(LABELS)
    assert labels.count("normal") == labels.count("covid") == 5


def test_mixed_set_matches_render_phantom_with_per_image_rng() -> None:
    images, labels = render_phantoms(4, 32, seed=5)
    for i, (image, label) in enumerate(zip(images, labels)):
        rng = np.random.default_rng(np.random.SeedSequence([5, i]))
        assert np.array_equal(image, render_phantom(32, rng, label))


@pytest.mark.parametrize("size", [32, 64])
def test_covid_lungs_are_brighter_than_normal(size: int) -> None:
    normal, _ = render_phantoms(32, size, seed=0, label="normal")
    covid, _ = render_phantoms(32, size, seed=0, label="covid")
    normal_med = _lung_band_medians(normal)
    covid_med = _lung_band_medians(covid)
    assert np.median(covid_med) > np.median(normal_med) + 8.0
    wins = (covid_med[:, None] > normal_med[None, :]).mean()
    assert wins > 0.7


def test_lungs_darker_than_heart_and_abdomen() -> None:
    images, _ = render_phantoms(16, 64, seed=4, label="normal")
    lungs = _lung_band_medians(images)
    heart = np.median(images[:, 38:44, 30:38].reshape(16, -1), axis=1)
    abdomen = np.median(images[:, 58:63, 20:44].reshape(16, -1), axis=1)
    assert np.all(lungs < heart)
    assert np.all(lungs < abdomen)


def test_background_is_dark_and_body_is_not() -> None:
    images, _ = render_phantoms(16, 64, seed=6)
    corners = np.concatenate([images[:, :3, :3], images[:, :3, -3:]], axis=1)
    assert np.median(corners) < 40
    assert np.median(images[:, 40:60, 28:36]) > 100


def test_images_use_a_reasonable_range() -> None:
    images, _ = render_phantoms(16, 64, seed=9)
    for image in images:
        lo, hi = np.percentile(image, [1, 99])
        assert hi - lo > 100
        assert image.std() > 25
        assert len(np.unique(image)) > 50


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 2, "size": 15},
        {"n": 2, "size": 0},
        {"n": 2, "size": 32.0},
        {"n": -1, "size": 32},
        {"n": 2, "size": 32, "label": "pneumonia"},
        {"n": 2, "size": 32, "label": "Normal"},
        {"n": 2, "size": 32, "seed": -1},
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        render_phantoms(**kwargs)


def test_error_message_names_allowed_values() -> None:
    with pytest.raises(ValueError, match="normal.*covid"):
        render_phantoms(1, 32, label="pneumonia")
    with pytest.raises(ValueError, match=">= 16"):
        render_phantoms(1, 8)


def test_render_phantom_rejects_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        render_phantom(8, rng)
    with pytest.raises(ValueError):
        render_phantom(32, rng, "other")
    with pytest.raises(ValueError):
        render_phantom(32, rng, None)  # type: ignore[arg-type]
