import time

import numpy as np
import pytest
from scipy import ndimage

from nanofind.learn.metrics import segmentation_scores
from nanofind.segment.baselines import (
    BASELINES,
    bragg_peak_mask,
    bragg_peak_score,
    fourier_annulus_mask,
    lattice_band,
    otsu_mask,
)

PIXEL_A = 0.3
SPACING_A = 2.35  # Au {111}


def _disc(n, radius, center=None):
    cy, cx = center if center is not None else (n / 2, n / 2 - 10)
    y, x = np.mgrid[:n, :n]
    return (y - cy) ** 2 + (x - cx) ** 2 <= radius**2


def _amorphous(n, seed, grain_px=2.0):
    """Gaussian-filtered white noise (unit std) plus white shot-like noise of std 0.5."""
    rng = np.random.default_rng(seed)
    background = ndimage.gaussian_filter(rng.normal(size=(n, n)), grain_px)
    return background / background.std() + 0.5 * rng.normal(size=(n, n))


def _lattice_scene(n=256, seed=0, amplitude=2.0, radius=70, theta=0.4):
    """Amorphous background with fringes of 2.35 Å (at 0.3 Å/pixel) inside a disc; no intensity offset."""
    disc = _disc(n, radius)
    y, x = np.mgrid[:n, :n]
    period_px = SPACING_A / PIXEL_A
    fringes = amplitude * np.sin(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / period_px)
    return _amorphous(n, seed) + disc * fringes, disc


def test_otsu_finds_dark_disc():
    rng = np.random.default_rng(5)
    disc = _disc(256, 60)
    image = 1.0 - 0.3 * disc + 0.2 * rng.normal(size=disc.shape)
    mask = otsu_mask(image)
    assert mask.dtype == bool
    assert segmentation_scores(mask, disc)["dice"] > 0.9
    # the bright side is background: inverting the contrast makes the disc the background
    assert segmentation_scores(otsu_mask(-image), disc)["dice"] < 0.1


@pytest.mark.parametrize("name", ["fourier", "bragg"])
@pytest.mark.parametrize("pixel_size_A", [PIXEL_A, None])
@pytest.mark.parametrize("seed", [0, 1])
def test_lattice_baselines_find_crystalline_disc(name, pixel_size_A, seed):
    image, disc = _lattice_scene(seed=seed)
    mask = BASELINES[name](image, pixel_size_A)
    assert mask.dtype == bool and mask.shape == image.shape
    assert segmentation_scores(mask, disc)["dice"] > 0.7


def test_otsu_does_not_see_fringes_without_intensity_offset():
    image, disc = _lattice_scene(seed=0)
    assert segmentation_scores(otsu_mask(image), disc)["dice"] < 0.6


@pytest.mark.parametrize("name", ["fourier", "bragg"])
@pytest.mark.parametrize("pixel_size_A", [PIXEL_A, None])
@pytest.mark.parametrize("seed", [10, 11])
def test_no_lattice_gives_nearly_empty_mask(name, pixel_size_A, seed):
    image = _amorphous(256, seed)
    assert BASELINES[name](image, pixel_size_A).mean() < 0.05


def test_constant_image_gives_empty_masks():
    image = np.full((96, 96), 3.0)
    for name, baseline in BASELINES.items():
        assert not baseline(image, PIXEL_A).any(), name


def test_uniform_signature_on_non_square_image():
    image = _amorphous(300, 2)[:200]
    for name, baseline in BASELINES.items():
        mask = baseline(image)
        assert mask.shape == (200, 300) and mask.dtype == bool, name
        assert baseline(image, pixel_size_A=0.5).shape == (200, 300), name


def test_lattice_band_units():
    # 0.25-0.75 1/Å at 0.3 Å/pixel = 0.075-0.225 cycles/pixel
    assert lattice_band(0.3) == pytest.approx((0.075, 0.225))
    # fractions 0.12-0.9 of Nyquist (0.5 cycles/pixel)
    assert lattice_band(None) == pytest.approx((0.06, 0.45))
    with pytest.raises(ValueError, match="Nyquist"):
        lattice_band(3.0)


def test_bragg_score_grid_and_errors():
    image, _ = _lattice_scene(n=160, radius=40)
    score, cy, cx = bragg_peak_score(image, PIXEL_A, window_px=64, step_px=32)
    # starts 0, 32, 64, 96 (the last aligned with the edge): centres 31.5 ... 127.5
    assert score.shape == (4, 4)
    assert np.array_equal(cy, [31.5, 63.5, 95.5, 127.5]) and np.array_equal(cx, cy)
    with pytest.raises(ValueError, match="smaller than"):
        bragg_peak_mask(np.zeros((40, 40)), window_px=64)
    with pytest.raises(ValueError, match="2D"):
        fourier_annulus_mask(np.zeros((4, 4, 4)))


def test_bragg_is_fast_on_512():
    image, _ = _lattice_scene(n=512, radius=140)
    start = time.perf_counter()
    bragg_peak_mask(image, PIXEL_A)
    assert time.perf_counter() - start < 2.0
