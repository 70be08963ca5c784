"""Random-convolution augmentation: colours and textures change, shapes and boxes stay, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from stream.errors import LiveTagError
from training.commands.train_detector import DetectorTrainSettings
from training.detection_data import augment
from training.random_convolution import random_convolution, random_kernel


def _square(size: int = 96) -> np.ndarray:
    """A red square on a grey field: (size, size, 3) uint8."""
    image = np.full((size, size, 3), 100, np.uint8)
    image[32:64, 24:72] = (230, 40, 40)
    return image


def _edges(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the mean over channels: (H, W) float."""
    grey = image.astype(np.float32).mean(axis=2)
    gy, gx = np.gradient(grey)
    return np.hypot(gx, gy)


def test_same_generator_state_gives_the_same_image() -> None:
    image = _square()
    a = random_convolution(image, np.random.default_rng(7))
    b = random_convolution(image, np.random.default_rng(7))
    c = random_convolution(image, np.random.default_rng(8))
    assert a.shape == image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_colours_change_but_the_shape_stays_in_place() -> None:
    image = _square()
    changed = 0
    for seed in range(20):
        out = random_convolution(image, np.random.default_rng(seed))
        inside = out[36:60, 28:68].reshape(-1, 3).mean(axis=0)
        outside = out[:20].reshape(-1, 3).mean(axis=0)
        assert np.abs(inside - outside).max() > 10  # the square still stands out from the field
        changed += int(np.abs(inside - image[40, 40].astype(float)).max() > 20)
        edges = _edges(out)
        ring = np.zeros(edges.shape, bool)  # pixels within 3 of the square's outline
        ring[29:67, 21:75] = True
        ring[35:61, 27:69] = False
        assert edges[ring].mean() > 3 * edges[~ring].mean()  # the edges are where they were
    assert changed >= 10  # most draws give the square another colour


def test_kernel_scale_follows_its_size() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 3, 5, 7):
        weights = np.concatenate([random_kernel(size, rng).ravel() for _ in range(200)])
        assert weights.std() == pytest.approx(1 / np.sqrt(3 * size * size), rel=0.1)
    with pytest.raises(ValueError, match="odd"):
        random_kernel(4, rng)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        random_convolution(np.zeros((8, 8), np.uint8), rng)


def test_augment_without_it_draws_exactly_as_before() -> None:
    image = _square(128)
    box = np.array([[24.0, 32.0, 72.0, 64.0]], np.float32)
    plain = augment(image, box.copy(), np.arange(1), np.random.default_rng(3), camera=True)
    off = augment(image, box.copy(), np.arange(1), np.random.default_rng(3), camera=True, rand_conv=0.0)
    for a, b in zip(plain, off, strict=True):
        np.testing.assert_array_equal(a, b)
    on = augment(image, box.copy(), np.arange(1), np.random.default_rng(3), camera=True, rand_conv=1.0)
    np.testing.assert_array_equal(on[1], plain[1])  # same geometry: drawn before the pixels change
    assert not np.array_equal(on[0], plain[0])


def test_settings_reject_a_probability_outside_zero_and_one(tmp_path) -> None:
    with pytest.raises(LiveTagError, match="--rand-conv"):
        DetectorTrainSettings(data=tmp_path, out=tmp_path, rand_conv=1.5)
