"""The convolution model's images against the Gaussian columns they stand for, and their placement."""

import math

import numpy as np
import pytest

from nanofind.library.prototypes import builtin_prototypes
from nanofind.library.queries import QueryConditions, render_query
from nanofind.library.render import placed_columns, render_haadf
from nanofind.library.zones import project

A_AU = 4.078


def projection(kind, formula, uvw, **kwargs):
    (p,) = builtin_prototypes([kind], [formula])
    return project(p.atoms, uvw, **kwargs)


def gaussian_columns(proj, shape, pixel_size_A, sigma_A, **placement):
    """Σ weight · exp(−r²/2σ²) over every column, sampled at pixel centres: the model written out."""
    xy, index = placed_columns(proj, shape, pixel_size_A, margin_A=5 * sigma_A, **placement)
    yy, xx = (np.mgrid[0:shape[0], 0:shape[1]] + 0.5) * pixel_size_A
    out = np.zeros(shape)
    for (x, y), k in zip(xy * pixel_size_A, index, strict=True):
        out += proj.z_weight_per_A[k] * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_A ** 2))
    return out


@pytest.mark.parametrize("sigma_A, pixel_size_A", [(0.45, 0.1), (0.3, 0.1), (0.4, 0.2)])
def test_a_column_peaks_at_its_weight(sigma_A, pixel_size_A):
    p = projection("fcc", "Au", (1, 0, 0))  # columns a/2 = 2.04 Å apart: their tails do not add up
    x0 = 20 * pixel_size_A + pixel_size_A / 2  # a column on the centre of pixel (20, 20)
    image = render_haadf(p, (64, 64), pixel_size_A, sigma_A=sigma_A, shift_A=(x0, x0))
    assert image[20, 20] == pytest.approx(p.z_weight_per_A[0], rel=0.005)
    assert image[20, 20] == image[15:26, 15:26].max()


@pytest.mark.parametrize("sigma_A, pixel_size_A", [(0.45, 0.1), (0.3, 0.1), (0.4, 0.2)])
def test_the_image_is_the_sum_of_gaussian_columns(sigma_A, pixel_size_A):
    p = projection("fcc", "Au", (1, 1, 0))
    shift = (1.234, 2.345)  # columns off the pixel grid
    image = render_haadf(p, (80, 90), pixel_size_A, sigma_A=sigma_A, shift_A=shift)
    model = gaussian_columns(p, (80, 90), pixel_size_A, sigma_A, shift_A=shift)
    # the bilinear spread adds a blur of variance up to 1/4 px² per axis: the peaks drop by ≲ 0.25/σ²
    sigma_px = sigma_A / pixel_size_A
    tolerance = (0.25 / sigma_px ** 2 + 0.005) * p.z_weight_per_A.max()
    assert np.abs(image - model).max() < tolerance


def test_the_mean_intensity_is_the_weight_density_times_the_gaussian_area():
    p = projection("rutile", "TiO2", (0, 0, 1))
    a = float(np.linalg.norm(p.cell_A[0]))  # square cell
    pixel = a / 40
    sigma = 0.5
    image = render_haadf(p, (200, 200), pixel, sigma_A=sigma, shift_A=(0.37, 1.21))  # 5 × 5 whole cells
    density = p.z_weight_per_A.sum() / abs(np.linalg.det(p.cell_A))
    assert image.mean() == pytest.approx(density * 2 * math.pi * sigma ** 2, rel=0.003)


def peak_near(image, xy_A, pixel_size_A):
    col, row = np.floor(np.asarray(xy_A) / pixel_size_A).astype(int)
    return image[row - 1:row + 2, col - 1:col + 2].max()


def test_two_kinds_of_column_differ_as_z_to_the_n():
    for n in (1.7, 2.0):
        p = projection("CsCl", "CsCl", (1, 0, 0), exponent=n)
        cs, cl = p.positions_A[p.numbers == 55][0], p.positions_A[p.numbers == 17][0]
        pixel = 0.1
        origin = np.array([3.05, 3.05])  # the cell origin on a pixel centre; Cl sits at (a/2, a/2) off it
        image = render_haadf(p, (96, 96), pixel, sigma_A=0.45, shift_A=tuple(origin))

        assert peak_near(image, origin + cs, pixel) / peak_near(image, origin + cl, pixel) == pytest.approx(
            (55 / 17) ** n, rel=0.02)


def chiral():
    """CsCl along [3 2 1]: an oblique cell of two columns, no mirror line and no fourfold axis."""
    return projection("CsCl", "CsCl", (3, 2, 1))


def test_a_quarter_turn_turns_the_image():
    # origin at the centre of a square field (a pixel corner): turning by 90° from x towards y is rot90
    # of the array, clockwise on screen (rows run down)
    p = chiral()
    n, pixel = 64, 0.1
    centre = (n * pixel / 2, n * pixel / 2)
    upright = render_haadf(p, (n, n), pixel, shift_A=centre)
    turned = render_haadf(p, (n, n), pixel, rotation_deg=90.0, shift_A=centre)
    assert np.allclose(turned, np.rot90(upright, k=-1), atol=1e-9 * upright.max())
    assert not np.allclose(turned, upright, atol=0.05 * upright.max())  # the test can tell


def test_a_square_pattern_is_the_same_after_a_quarter_turn_up_to_a_shift():
    p = projection("fcc", "Au", (1, 0, 0))
    pixel = A_AU / 40  # the cell is 40 px: shifts by whole cells are whole pixels
    upright = render_haadf(p, (120, 120), pixel, shift_A=(1.0, 2.0))
    turned = render_haadf(p, (120, 120), pixel, rotation_deg=90.0, shift_A=(1.0, 2.0))
    shifts = [(dr, dc) for dr in range(40) for dc in range(40)
              if np.allclose(np.roll(upright, (dr, dc), axis=(0, 1))[40:80, 40:80], turned[40:80, 40:80],
                             atol=1e-6 * upright.max())]
    assert shifts
    rotated = render_haadf(p, (120, 120), pixel, rotation_deg=30.0, shift_A=(1.0, 2.0))
    assert not any(np.allclose(np.roll(upright, s, axis=(0, 1))[40:80, 40:80], rotated[40:80, 40:80],
                               atol=0.01 * upright.max()) for s in shifts)


def test_mirror_flips_y():
    p = chiral()
    n, pixel = 64, 0.1
    centre = (n * pixel / 2, n * pixel / 2)
    upright = render_haadf(p, (n, n), pixel, shift_A=centre)
    mirrored = render_haadf(p, (n, n), pixel, mirror=True, shift_A=centre)
    assert np.allclose(mirrored, np.flipud(upright), atol=1e-9 * upright.max())
    assert not np.allclose(mirrored, upright, atol=0.05 * upright.max())
    # mirrored first, then turned: y → −y, then (x, y) → (−y, x)
    both = render_haadf(p, (n, n), pixel, mirror=True, rotation_deg=90.0, shift_A=centre)
    assert np.allclose(both, np.rot90(np.flipud(upright), k=-1), atol=1e-9 * upright.max())


def test_the_shift_places_the_cell_origin():
    p = projection("fcc", "Au", (1, 0, 0))
    pixel = 0.1
    image = render_haadf(p, (64, 64), pixel, shift_A=(2.35, 1.15))  # pixel (row 11, col 23)
    assert image[11, 23] == pytest.approx(p.z_weight_per_A[0], rel=0.005)
    xy, _ = placed_columns(p, (64, 64), pixel, shift_A=(2.35, 1.15))
    assert np.min(np.hypot(*(xy - [23.5, 11.5]).T)) < 1e-9


@pytest.mark.parametrize("rotation_deg, mirror", [(0.0, False), (37.0, False), (37.0, True), (200.0, True)])
def test_the_atom_by_atom_query_agrees_with_the_column_model(rotation_deg, mirror):
    # two independent renderers, one of the real slab and one of the projected columns, share the placement
    (proto,) = builtin_prototypes(["CsCl"], ["CsCl"])
    p = project(proto.atoms, (3, 2, 1))
    shape, pixel = (128, 128), 0.1
    conditions = QueryConditions(pixel_size_A=pixel, shape=shape, rotation_deg=rotation_deg, mirror=mirror,
                                 shift_A=(0.3, 0.2), sigma_A=0.45, dose_e_per_A2=None, thickness_A=40.0)
    query = render_query(proto.atoms, (3, 2, 1), conditions)
    centre = (shape[1] * pixel / 2 + 0.3, shape[0] * pixel / 2 + 0.2)
    same = render_haadf(p, shape, pixel, sigma_A=0.45, rotation_deg=rotation_deg, mirror=mirror, shift_A=centre)
    other = render_haadf(p, shape, pixel, sigma_A=0.45, rotation_deg=rotation_deg, mirror=not mirror,
                         shift_A=centre)
    assert np.corrcoef(query.ravel(), same.ravel())[0, 1] > 0.9
    assert np.corrcoef(query.ravel(), other.ravel())[0, 1] < 0.7


def test_query_counts_follow_the_dose():
    (proto,) = builtin_prototypes(["fcc"], ["Au"])
    dose, pixel = 1e6, 0.1
    plain = QueryConditions(pixel_size_A=pixel, shape=(96, 96), dose_e_per_A2=None)
    relative = render_query(proto.atoms, (1, 1, 0), plain)
    counts = render_query(proto.atoms, (1, 1, 0), QueryConditions(pixel_size_A=pixel, shape=(96, 96),
                                                                 dose_e_per_A2=dose), rng=1)
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    # expected counts: dose · pixel area · (0.5 % background + 5 % on the brightest columns)
    slope, intercept = np.polyfit(relative.ravel(), counts.ravel(), 1)
    beam = dose * pixel ** 2
    assert intercept / beam == pytest.approx(0.005, rel=0.03)
    assert slope / beam == pytest.approx(0.05, rel=0.01)
    residual = counts - (intercept + slope * relative)
    assert np.var(residual) == pytest.approx(np.mean(counts), rel=0.1)  # Poisson: variance = mean
