"""Crops and features against images with known geometry and spectra."""

import numpy as np
import pytest

from nanofind.classify.crops import MIN_CROP_PX, PAD_FRACTION, crop_window, cut, region_crops
from nanofind.classify.features import RICH_FEATURES, SEED_FEATURES, feature_matrix, rich_features, seed_features


def _feature(values, name):
    return values[RICH_FEATURES.index(name)]


def _disc(shape, centre, radius):
    yy, xx = np.indices(shape)
    return np.hypot(yy - centre[0], xx - centre[1]) <= radius


def _particle(side=128, period_px=(5.0,), angles_deg=(0.0,), noise=0.3, seed=0, centres=((64, 64),), radius=30):
    """Fringes of the given periods and directions inside discs, on noise (a particle on carbon)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((side, side), dtype=float)
    image = rng.normal(0, noise, (side, side))
    inside = np.zeros((side, side), bool)
    for c in centres:
        inside |= _disc((side, side), c, radius)
    for period, angle in zip(period_px, angles_deg, strict=True):
        a = np.radians(angle)
        image += inside * np.cos(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period)
    return image - 0.5 * inside


def test_crop_window_is_square_padded_and_bounded():
    top, left, side = crop_window((10, 20, 50, 100), (512, 512))  # 40 x 80 box
    assert side == round(80 * (1 + 2 * PAD_FRACTION))
    assert (top + side / 2, left + side / 2) == pytest.approx((30, 60), abs=1)
    assert crop_window((5, 5, 9, 9), (64, 64))[2] == MIN_CROP_PX


def test_cut_fills_outside_with_the_median():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    window = cut(image, -2, -2, 6)
    assert window.shape == (6, 6)
    assert np.all(window[2:, 2:] == image[:4, :4])
    assert np.all(window[:2] == np.median(image[:4, :4]))


def test_region_crops_follow_the_labels():
    labels = np.zeros((200, 200), int)
    labels[20:60, 30:70] = 1
    labels[120:180, 100:150] = 2
    image = np.random.default_rng(0).normal(size=(200, 200)).astype(np.float32)
    crops = region_crops(image, labels)
    assert [c.label for c in crops] == [1, 2]
    assert crops[1].image.shape == (round(60 * 1.3), round(60 * 1.3))
    assert np.array_equal(crops[0].image[crops[0].row0 * -1 if crops[0].row0 < 0 else 0:][:5, :5],
                          crops[0].image[:5, :5])


def test_fringe_directions_and_spacings_are_counted():
    one = rich_features(_particle(period_px=(5.0,), angles_deg=(20.0,)))
    cross = rich_features(_particle(period_px=(5.0, 5.0), angles_deg=(20.0, 110.0)))
    three = rich_features(_particle(period_px=(5.0, 5.0, 5.0), angles_deg=(0.0, 60.0, 120.0)))
    noise = rich_features(_particle(period_px=(), angles_deg=()))
    assert _feature(one, "spot_directions") == 1
    assert _feature(cross, "spot_directions") == 2
    assert _feature(three, "spot_directions") == 3
    assert _feature(noise, "spots") <= 1
    two_spacings = rich_features(_particle(period_px=(5.0, 3.0), angles_deg=(0.0, 90.0)))
    assert _feature(two_spacings, "spot_spacings") == 2


def test_seed_centre_of_mass_follows_the_fringe_frequency():
    coarse = seed_features(_particle(period_px=(8.0,), angles_deg=(0.0,), noise=0.05))
    fine = seed_features(_particle(period_px=(3.0,), angles_deg=(0.0,), noise=0.05))
    com = SEED_FEATURES.index("fft_radial_centre_of_mass")
    assert fine[com] > coarse[com]
    assert len(coarse) == 5


def test_harmonics_do_not_depend_on_rotation():
    a = rich_features(_particle(period_px=(5.0, 5.0), angles_deg=(10.0, 100.0), noise=0.05))
    b = rich_features(np.rot90(_particle(period_px=(5.0, 5.0), angles_deg=(10.0, 100.0), noise=0.05)))
    names = [n for n in RICH_FEATURES if n.startswith("band")]
    idx = [RICH_FEATURES.index(n) for n in names]
    assert np.allclose(a[idx], b[idx], atol=0.02)


def test_two_touching_particles_show_two_lobes():
    single = rich_features(_particle(side=160, centres=((80, 80),), radius=40, noise=0.1))
    pair = rich_features(_particle(side=160, centres=((80, 52), (80, 110)), radius=28, noise=0.1))
    assert _feature(single, "mask_lobes") == 1
    assert _feature(pair, "mask_lobes") == 2
    assert _feature(pair, "mask_solidity") < _feature(single, "mask_solidity")


def test_twin_turns_the_fringes_between_tiles():
    side = 144
    yy, xx = np.indices((side, side), dtype=float)
    left = np.cos(2 * np.pi * (xx * np.cos(0.3) + yy * np.sin(0.3)) / 5.0)
    right = np.cos(2 * np.pi * (xx * np.cos(-0.9) + yy * np.sin(-0.9)) / 5.0)
    twinned = np.where(xx < side / 2, left, right)
    single = left
    a, b = rich_features(twinned), rich_features(single)
    assert _feature(a, "tile_orientation_range_deg") > 40
    assert _feature(b, "tile_orientation_range_deg") < 5


def test_feature_matrix_shapes():
    crops = [_particle(seed=k) for k in range(3)]
    assert feature_matrix(crops, "seed").shape == (3, 5)
    assert feature_matrix(crops, "rich").shape == (3, len(RICH_FEATURES))
    assert feature_matrix([], "rich").shape == (0, len(RICH_FEATURES))


def test_a_stacking_fault_streaks_the_spots():
    # two fringe sets; above the fault plane y = 70 the x fringes slip by a third of their period,
    # as the columns of a close-packed crystal do across a stacking fault
    side = 144
    yy, xx = np.indices((side, side), dtype=float)
    inside = _disc((side, side), (72, 72), 60)
    rng = np.random.default_rng(1)
    perfect = inside * (np.cos(2 * np.pi * xx / 5.0) + np.cos(2 * np.pi * yy / 7.0)) + rng.normal(0, 0.1, (side, side))
    slip = np.where(yy > 70, 5.0 / 3, 0.0)
    faulted = inside * (np.cos(2 * np.pi * (xx + slip) / 5.0) + np.cos(2 * np.pi * yy / 7.0))
    faulted = faulted + rng.normal(0, 0.1, (side, side))
    assert _feature(rich_features(faulted), "relrod_max") > _feature(rich_features(perfect), "relrod_max") + 0.5


def test_mask_shortcuts_match_their_scipy_and_skimage_definitions():
    # the shape features use a one-labelling hole fill and moments instead of regionprops (speed):
    # they must give what binary_fill_holes and regionprops define, on irregular masks with holes
    from scipy import ndimage
    from skimage.measure import regionprops

    from nanofind.classify.features import _fill_holes, _solidity_and_eccentricity

    rng = np.random.default_rng(3)
    for k in range(20):
        mask = ndimage.gaussian_filter(rng.normal(size=(40 + k, 57)), 2.5) > 0.05
        assert np.array_equal(_fill_holes(mask), ndimage.binary_fill_holes(mask))
        labelled, n = ndimage.label(mask, structure=np.ones((3, 3)))
        region = labelled == 1 + int(np.argmax(np.bincount(labelled.ravel())[1:]))
        (props,) = regionprops(region.astype(np.uint8))
        assert _solidity_and_eccentricity(region) == pytest.approx((props.solidity, props.eccentricity), abs=1e-12)
    ring = _disc((60, 60), (30, 30), 20) & ~_disc((60, 60), (30, 30), 8)
    assert np.array_equal(_fill_holes(ring), _disc((60, 60), (30, 30), 20))
    line = np.zeros((9, 30), bool)
    line[4, 3:25] = True
    assert _solidity_and_eccentricity(line) == pytest.approx((1.0, 1.0))
