"""Sub-pixel column peaks against positions known by construction."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from nanofind.columns.peaks import band_pass, find_columns, lattice_spacing_px, noise_sigma, refine_com
from nanofind.columns.synthetic import haadf_lattice, lattice_positions, render_columns
from nanofind.errors import NanofindInputError


def match(found_xy, true_xy, within=2.0):
    distance, index = cKDTree(found_xy).query(true_xy)
    return distance, distance < within


@pytest.mark.parametrize("x_px, y_px", [(20.0, 13.0), (20.5, 13.5), (20.25, 13.8), (7.9, 30.1)])
def test_a_single_gaussian_is_found_where_it_was_put(x_px, y_px):
    # origin at the top-left corner of the top-left pixel: pixel [r, c] has its centre at (c + 0.5, r + 0.5)
    image = render_columns((40, 48), [(x_px, y_px)], sigma_px=1.5)
    for refine in ("com", "gaussian"):
        found = find_columns(image, spacing_px=8, refine=refine)
        assert len(found) == 1
        assert found.x_px[0] == pytest.approx(x_px, abs=0.02)
        assert found.y_px[0] == pytest.approx(y_px, abs=0.02)
    plain = find_columns(image, spacing_px=8, refine="none")  # a brightest pixel (ties on pixel corners)
    assert image[int(plain.y_px[0]), int(plain.x_px[0])] == image.max()
    assert abs(plain.x_px[0] - x_px) <= 0.5 and abs(plain.y_px[0] - y_px) <= 0.5


def test_lattice_offsets_are_recovered_to_a_small_fraction_of_a_pixel():
    rng = np.random.default_rng(3)
    xy = lattice_positions((160, 160), 10.0, angle_deg=17.0, jitter_px=0.3, margin_px=6, rng=rng)
    offsets = xy - np.floor(xy)
    assert offsets.std() > 0.25  # every sub-pixel offset occurs, not a few
    image = render_columns((160, 160), xy, sigma_px=1.8, background=0.1)
    found = find_columns(image, refine="com")
    distance, matched = match(np.column_stack([found.x_px, found.y_px]), xy)
    assert matched.all() and len(found) == len(xy)
    assert np.sqrt(np.mean(distance ** 2)) < 0.03
    rounded = find_columns(image, refine="none")
    rough, _ = match(np.column_stack([rounded.x_px, rounded.y_px]), xy)
    assert np.sqrt(np.mean(rough ** 2)) > 0.25  # what refining buys: pixel centres are off by ~0.4 px


def test_noisy_haadf_lattice_meets_recall_and_precision():
    image, xy = haadf_lattice((192, 192), spacing_px=11.0, sigma_px=2.0, counts=1000, rng=4)
    found = find_columns(image)
    distance, matched = match(np.column_stack([found.x_px, found.y_px]), xy)
    assert matched.mean() >= 0.99 and len(found) <= len(xy) + 2
    whole = (xy.min(1) > 6) & (xy.max(1) < 186)  # columns cut by the border are off-centre by nature
    assert np.sqrt(np.mean(distance[matched & whole] ** 2)) < 0.09


def test_spacing_comes_from_the_lattice():
    image = render_columns((200, 200), lattice_positions((200, 200), 9.0, angle_deg=30, rng=0), sigma_px=1.5)
    assert lattice_spacing_px(image) == pytest.approx(9.0, abs=0.5)
    image = render_columns((200, 200), lattice_positions((200, 200), 14.0, hexagonal=True, rng=0), sigma_px=2)
    assert lattice_spacing_px(image) == pytest.approx(14.0, abs=0.7)


def test_dark_columns_are_found_like_bright_ones_and_auto_tells_which():
    xy = lattice_positions((128, 128), 10.0, angle_deg=8, margin_px=5, rng=2)
    bright = render_columns((128, 128), xy, sigma_px=1.6, background=0.2)
    dark = 1.5 - bright  # HRTEM at a focus where columns are dark
    a = find_columns(bright, contrast="auto")
    b = find_columns(dark, contrast="auto")
    assert (a.contrast, b.contrast) == ("bright", "dark")
    assert np.allclose(a.x_px, b.x_px, atol=1e-3) and np.allclose(a.y_px, b.y_px, atol=1e-3)
    wrong = find_columns(dark, contrast="bright", spacing_px=10.0)
    _, matched = match(np.column_stack([wrong.x_px, wrong.y_px]), xy, within=1.0)
    assert matched.mean() < 0.5  # the gaps between columns, not the columns


def test_two_peaks_closer_than_the_minimum_separation_keep_the_stronger():
    image = render_columns((40, 60), [(19.5, 20.5), (23.5, 20.5)], sigma_px=1.0, amplitude=[1.0, 0.6])
    apart = find_columns(image, spacing_px=10.0, min_separation_px=3.0, refine="none")
    assert sorted(apart.x_px) == [19.5, 23.5]
    merged = find_columns(image, spacing_px=10.0, min_separation_px=6.0, refine="none")
    assert list(merged.x_px) == [19.5]


def test_noise_alone_gives_no_columns_and_noise_is_measured():
    rng = np.random.default_rng(0)
    noise = rng.normal(100.0, 5.0, (256, 256)).astype(np.float32)
    assert noise_sigma(noise) == pytest.approx(5.0, rel=0.05)
    assert len(find_columns(noise, spacing_px=10.0)) == 0
    with pytest.raises(NanofindInputError, match="no lattice"):  # and no spacing is read from noise
        find_columns(noise)


def test_band_pass_is_the_difference_of_two_mirrored_gaussian_filters():
    from scipy import ndimage as ndi

    image = np.random.default_rng(1).random((64, 80)).astype(np.float32)
    expected = ndi.gaussian_filter(image, 1.2, mode="reflect") - ndi.gaussian_filter(image, 7.0, mode="reflect")
    assert np.allclose(band_pass(image, 1.2, 7.0), expected, atol=2e-3)


def test_com_refinement_stays_put_on_a_centred_symmetric_peak_and_falls_back_when_lost():
    image = render_columns((21, 21), [(10.5, 10.5)], sigma_px=1.5)
    rows, cols = refine_com(image, np.array([10.0]), np.array([10.0]), half_px=3)
    assert (rows[0], cols[0]) == pytest.approx((10.0, 10.0), abs=1e-9)


def test_bad_images_get_clear_errors():
    with pytest.raises(NanofindInputError, match="2D"):
        find_columns(np.zeros((4, 4, 4)))
    with pytest.raises(NanofindInputError, match="NaN"):
        find_columns(np.full((32, 32), np.nan))
    with pytest.raises(NanofindInputError, match="no lattice"):
        find_columns(np.zeros((64, 64)))
    with pytest.raises(NanofindInputError, match="contrast"):
        find_columns(np.zeros((64, 64)), contrast="grey")


def test_crystal_region_is_the_lattice_and_not_the_film():
    from nanofind.columns.peaks import crystal_region

    rng = np.random.default_rng(6)
    shape = (192, 192)
    xy = lattice_positions(shape, 8.0, angle_deg=20, rng=rng)
    inside = np.hypot(xy[:, 0] - 96, xy[:, 1] - 96) < 50
    lattice = render_columns(shape, xy[inside], sigma_px=1.3)
    from scipy import ndimage as ndi

    film = ndi.gaussian_filter(rng.normal(0, 1, shape), 3.0) * 2.0  # speckle far broader than the columns
    region = crystal_region(lattice + film, 8.0)
    rows, cols = np.indices(shape)
    r = np.hypot(rows + 0.5 - 96, cols + 0.5 - 96)
    assert region[r < 40].mean() > 0.95 and region[r > 70].mean() < 0.05
    assert crystal_region(render_columns(shape, xy, sigma_px=1.3), 8.0) is None  # lattice everywhere
