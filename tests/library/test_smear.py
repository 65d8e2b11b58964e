"""Tilt smear: the line's transfer function, its convolution, and its fit to tilted crystals."""

import math

import numpy as np
import pytest

from nanofind.library.match import register_entry
from nanofind.library.prototypes import builtin_prototypes
from nanofind.library.queries import QueryConditions, render_query
from nanofind.library.smear import fit_smear, line_transfer, smeared


def gaussian_spot(shape, centre_px, sigma_px):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return np.exp(-((xx - centre_px[0]) ** 2 + (yy - centre_px[1]) ** 2) / (2 * sigma_px ** 2))


def test_a_line_of_no_length_changes_nothing():
    image = np.random.default_rng(0).normal(size=(40, 56))
    assert np.array_equal(smeared(image, 0.2, 0.0, 30.0), image)
    assert np.allclose(line_transfer(np.array([0.3]), np.array([0.7]), 0.0, 30.0), 1.0)


def test_the_transfer_vanishes_where_the_line_holds_whole_periods():
    # a line L long along x kills the frequency 1/L along x, and leaves frequencies across it alone
    assert line_transfer(np.array(0.0), np.array(1 / 2.5), 2.5, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert line_transfer(np.array(1 / 2.5), np.array(0.0), 2.5, 0.0) == pytest.approx(1.0, abs=1e-12)
    assert line_transfer(np.array(1 / 2.5), np.array(0.0), 2.5, 90.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("angle_deg", [0.0, 35.0, 90.0, 143.0])
def test_a_smeared_spot_is_the_mean_of_spots_along_the_line(angle_deg):
    """Convolving with a uniform line = averaging copies shifted evenly along it (rows are y)."""
    p, length_A, sigma_px = 0.1, 2.4, 4.0
    shape, centre = (96, 96), (48.0, 48.0)
    smeared_spot = smeared(gaussian_spot(shape, centre, sigma_px), p, length_A, angle_deg)
    t = math.radians(angle_deg)
    steps = (np.arange(400) + 0.5) / 400 - 0.5  # midpoints along the line, as fractions of it
    expected = np.mean([gaussian_spot(shape, (centre[0] + s * length_A / p * math.cos(t),
                                              centre[1] + s * length_A / p * math.sin(t)), sigma_px)
                        for s in steps], axis=0)
    assert np.abs(smeared_spot - expected).max() < 0.005 * expected.max()
    assert smeared_spot.sum() == pytest.approx(expected.sum(), rel=1e-6)


@pytest.mark.parametrize("length_A, angle_deg", [(1.0, 20.0), (2.0, 97.5), (2.75, 150.0)])
def test_the_fit_recovers_a_smear_applied_to_an_entry(au_library, length_A, angle_deg):
    from nanofind.library.render import render_haadf

    entry = render_haadf(au_library.projection(1), (160, 160), 0.2, sigma_A=0.45, rotation_deg=17.0)
    query = smeared(entry, 0.2, length_A, angle_deg) + np.random.default_rng(3).normal(0, 0.02, entry.shape)
    fitted_length, fitted_angle = fit_smear(query, entry, 0.2)
    assert fitted_length == pytest.approx(length_A, abs=0.26)
    assert abs((fitted_angle - angle_deg + 90) % 180 - 90) <= 7.5


def test_an_untilted_query_is_not_smeared(au_library):
    from nanofind.library.render import render_haadf

    entry = render_haadf(au_library.projection(0), (160, 160), 0.2, sigma_A=0.45)
    assert fit_smear(entry, entry, 0.2)[0] == 0.0


@pytest.mark.parametrize("azimuth_deg, rotation_deg, mirror", [(30.0, 0.0, False), (75.0, 40.0, False),
                                                               (120.0, 25.0, True)])
def test_a_tilted_slab_is_fitted_with_its_smear(au_library, azimuth_deg, rotation_deg, mirror):
    """Tilting a 60 Å slab by 2° about an in-plane axis at the azimuth draws columns 60·tan 2° = 2.1 Å long,
    at right angles to the axis; the match reports that line in the query's own axes."""
    index = [au_library.label(k) for k in range(len(au_library))].index("fcc Au [1 1 0]")
    (au,) = builtin_prototypes(["fcc"], ["Au"])
    conditions = QueryConditions(pixel_size_A=0.1, shape=(320, 320), rotation_deg=rotation_deg, mirror=mirror,
                                 tilt_deg=2.0, tilt_azimuth_deg=azimuth_deg, thickness_A=60.0, sigma_A=0.45,
                                 dose_e_per_A2=None)
    query = render_query(au.atoms, (1, 1, 0), conditions, rng=0)
    match = register_entry(au_library, index, query, 0.1)
    depth_deg = azimuth_deg - 90.0  # where the slab's depth is drawn, before the query is mirrored and turned
    expected_deg = (-depth_deg if mirror else depth_deg) + rotation_deg
    assert match.smear_A == pytest.approx(60.0 * math.tan(math.radians(2.0)), abs=0.3)
    assert abs((match.smear_deg - expected_deg + 90) % 180 - 90) <= 8.0
