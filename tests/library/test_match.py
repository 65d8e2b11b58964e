"""Matching a query against a library: the metrics by hand, registration of known placements, retrieval."""

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from nanofind.errors import NanofindInputError
from nanofind.library.match import (
    EMD_INTENSITY_A,
    Match,
    emd,
    match_image,
    mse,
    peak_set,
    rank,
    register_entry,
    score,
    ssim,
    standardised,
)
from nanofind.library.prototypes import builtin_prototypes
from nanofind.library.queries import QueryConditions, render_query
from nanofind.library.register import polar_spectrum, rotation_candidates
from nanofind.library.render import placed_columns, render_haadf
from nanofind.library.zones import project, tile_positions

# ---- metrics -----------------------------------------------------------------------------------


def test_identical_images_score_perfectly():
    a = np.random.default_rng(0).normal(size=(48, 40))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    assert mse(a, a) == pytest.approx(0.0, abs=1e-12)


def test_brightness_and_contrast_do_not_count():
    a = np.random.default_rng(1).normal(size=(48, 48))
    assert ssim(a, 3.0 * a + 7.0) == pytest.approx(1.0, abs=1e-9)
    assert mse(a, 3.0 * a + 7.0) == pytest.approx(0.0, abs=1e-12)
    # standardised: an inverted image is as far as can be, ⟨(a + a)²⟩ = 4; an unrelated one about 2
    assert mse(a, -a) == pytest.approx(4.0, rel=1e-9)
    b = np.random.default_rng(2).normal(size=(48, 48))
    assert mse(a, b) == pytest.approx(2.0, abs=0.1)
    assert abs(ssim(a, b)) < 0.1


def test_emd_of_a_set_with_itself_is_zero():
    points = np.random.default_rng(3).uniform(0, 10, size=(25, 3))
    # (the Euclidean ground distance comes from |a|² + |b|² − 2a·b: zero to within √ε · |a|)
    assert emd(points, points) == pytest.approx(0.0, abs=1e-6)
    assert emd(points, points[::-1]) == pytest.approx(0.0, abs=1e-6)  # order does not matter


@pytest.mark.parametrize("a, b, expected", [
    ([(0, 0), (1, 0)], [(0, 1), (1, 1)], 1.0),  # each half moves up by 1
    ([(0, 0), (2, 0)], [(0, 0), (2, 3)], 1.5),  # one half stays, the other moves 3
    ([(0, 0)], [(1, 0), (-1, 0)], 1.0),  # the whole mass splits, each half moves 1
    ([(0, 0), (3, 0)], [(-1, 0), (1, 0), (5, 0)], 1.5),  # ∫|F_a − F_b| = 1/3 + 1/6 + 2·1/6 + 2·1/3
    ([(0, 0), (0, 4)], [(3, 0), (3, 4)], 3.0),  # not (0,0)→(3,4): 5 is dearer
])
def test_emd_by_hand(a, b, expected):
    assert emd(np.array(a, float), np.array(b, float)) == pytest.approx(expected, abs=1e-9)


def test_emd_in_one_dimension_is_the_wasserstein_distance():
    rng = np.random.default_rng(4)
    for n, m in ((5, 5), (4, 7), (9, 3)):
        a, b = rng.normal(size=n), rng.normal(1.0, 2.0, size=m)
        expected = wasserstein_distance(a, b)
        embedded = emd(np.column_stack([a, np.zeros(n)]), np.column_stack([b, np.zeros(m)]))
        assert embedded == pytest.approx(expected, abs=1e-9)


def test_emd_of_a_translated_set_is_the_translation():
    points = np.random.default_rng(5).uniform(0, 20, size=(30, 2))
    assert emd(points, points + [0.3, -0.4]) == pytest.approx(0.5, abs=1e-9)


def test_emd_with_an_empty_set_is_infinite():
    assert emd(np.zeros((0, 3)), np.ones((4, 3))) == math.inf
    assert emd(np.ones((4, 3)), np.zeros((0, 3))) == math.inf


def test_rank_orders_each_metric_its_own_way():
    matches = [Match(entry=k, shortlist_score=0.0, pixel_size_A=0.1, ssim=s, emd=e, mse=m)
               for k, (s, e, m) in enumerate([(0.9, 0.5, 0.3), (0.8, 0.1, 0.2), (0.7, 0.3, 0.1), (0.95, 0.4, 0.9)])]
    assert [m.entry for m in rank(matches, "ssim")] == [3, 0, 1, 2]
    assert [m.entry for m in rank(matches, "emd")] == [1, 2, 3, 0]
    assert [m.entry for m in rank(matches, "mse")] == [2, 1, 0, 3]
    # sum of ranks: entry 0: 1+3+2 = 6, entry 1: 2+0+1 = 3, entry 2: 3+1+0 = 4, entry 3: 0+2+3 = 5
    assert [m.entry for m in rank(matches, "all")] == [1, 2, 3, 0]


@pytest.mark.parametrize("metric, bad", [("emd", math.inf), ("emd", math.nan), ("ssim", math.nan)])
def test_a_metric_that_could_not_be_computed_ranks_last(metric, bad):
    matches = [Match(entry=k, shortlist_score=0.0, pixel_size_A=0.1, ssim=s, emd=e, mse=0.1)
               for k, (s, e) in enumerate([(0.9, 0.5), (0.8, 0.1), (0.7, 0.3)])]
    setattr(matches[1], metric, bad)
    assert rank(matches, metric)[-1].entry == 1


def test_peak_set_finds_the_columns_where_they_are():
    # rock salt MgO along [1 1 0]: Mg and O columns a/(2√2) = 1.49 Å apart, Mg twice as bright (Σ Z^1.7)
    (proto,) = builtin_prototypes(["rocksalt"], ["MgO"])
    p = project(proto.atoms, (1, 1, 0))
    pixel, shift = 0.2, (1.13, 2.27)
    image = render_haadf(p, (100, 100), pixel, sigma_A=0.45, shift_A=shift)
    points = peak_set(image, pixel, spacing_px=p.min_column_distance_A / pixel)
    xy, index = placed_columns(p, (100, 100), pixel, shift_A=shift)
    inner = np.all((xy > 8) & (xy < 92), axis=1)
    distance = np.linalg.norm(points[:, None, :2] / pixel - xy[None], axis=2)
    assert distance[:, inner].min(axis=0).max() < 0.2  # every inner column found, to 0.04 Å
    assert distance.min(axis=1).max() < 0.5  # and nothing else (near the border less precisely)
    kind = p.numbers[index[np.argmin(distance, axis=1)]]
    assert points[kind == 12, 2].min() > points[kind == 8, 2].max()
    # the third coordinate is EMD_INTENSITY_A × the standardised intensity: Å per standard deviation
    assert points[:, 2].max() < EMD_INTENSITY_A * standardised(image).max()


# ---- registration of the convolution model's own images ----------------------------------------

#: Rotational symmetry of the projections of fcc [1 0 0], [1 1 0], [1 1 1] (all also have mirror lines).
FOLD_DEG = {"[1 0 0]": 90.0, "[1 1 0]": 180.0, "[1 1 1]": 60.0}


def angle_error(found, true, period):
    return abs((found - true + period / 2) % period - period / 2)


def orientation_error(match, true_deg, period):
    """Degrees between the registered and the true orientation of a pattern with mirror lines.

    Such a pattern mirrored and turned by φ is the pattern turned by φ (mirror first) or by −φ
    (mirror last); which of the two conventions the match follows is tested on a chiral pattern below.
    """
    error = angle_error(match.rotation_deg, true_deg, period)
    if match.mirror:
        error = min(error, angle_error(-match.rotation_deg, true_deg, period))
    return error


def rotation(deg):
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def placement_error_A(library, index, match, shape, query_px_A, shift_A):
    """How far (Å) the registered translation is from a symmetry-equivalent of the true one.

    The query's centre C shows the entry at R(−θ)(C − s); the window (sampled at the query's centre,
    and by render's convention mirrored then turned by φ) lies at ``offset_px`` in a canvas whose cell
    origin is at its centre.
    """
    from nanofind.library.match import _canvas

    p = library.pixel_size_A
    side = match.window.shape[0]
    n = _canvas(library, index, match.variant, side).shape[0]
    row, col = match.offset_px
    found = np.array([(col + side / 2) * p - n * p / 2, (row + side / 2) * p - n * p / 2])
    v = np.array([shape[1], shape[0]]) * query_px_A / 2 - np.asarray(shift_A)
    if match.mirror:  # render's convention: the entry mirrored, then turned by rotation_deg
        v[1] = -v[1]
        expected = rotation(match.rotation_deg) @ v
    else:
        expected = rotation(-match.rotation_deg) @ v
    proj = library.projection(index)
    d = found - expected
    f = np.linalg.solve(proj.cell_A.T, d)
    d = (f - np.floor(f)) @ proj.cell_A
    same_kind = proj.positions_A[proj.z_weight_per_A == proj.z_weight_per_A[0]]
    return float(np.min(np.linalg.norm(tile_positions(proj.cell_A, same_kind, 1) - d, axis=1)))


SWEEP_ANGLES = np.arange(0.0, 180.0, 13.0) + 0.37


@pytest.fixture(scope="module")
def sweep(au_library):
    """Every zone of the fcc Au library rendered at 14 angles and random shifts, and registered."""
    rng = np.random.default_rng(1)
    out = []
    for index in range(len(au_library)):
        for theta in SWEEP_ANGLES:
            shift = tuple(rng.uniform(0, 4, 2))
            query = render_haadf(au_library.projection(index), (256, 256), 0.1, sigma_A=0.45, rotation_deg=theta,
                                 shift_A=shift)
            match = score(register_entry(au_library, index, query, 0.1), au_library, ("ssim",))
            out.append((index, float(theta), shift, match))
    return out


def test_registration_recovers_rotation_shift_and_pixel_size(au_library, sweep):
    assert sorted(au_library.zone) == sorted(FOLD_DEG)
    for index, theta, shift, match in sweep:
        where = f"{au_library.label(index)} at {theta}°"
        assert orientation_error(match, theta, FOLD_DEG[au_library.zone[index]]) < 1.0, where
        # within 1.5 library pixels of the true translation (a wrong one is off by ~1 Å)
        assert placement_error_A(au_library, index, match, (256, 256), 0.1, shift) < 0.3, where
        assert match.pixel_size_A == pytest.approx(0.1, rel=0.005), where
        assert match.correlation > 0.9, where


def test_registered_windows_mostly_look_like_their_entries(sweep):
    assert np.median([m.ssim for *_, m in sweep]) > 0.9


def test_every_registered_window_looks_like_its_entry(sweep):
    assert min(m.ssim for *_, m in sweep) > 0.9


def test_a_translation_peak_on_the_canvas_edge_is_refined(au_library):
    index = list(au_library.zone).index("[1 1 0]")
    query = render_haadf(au_library.projection(index), (256, 256), 0.1, sigma_A=0.45, rotation_deg=33.0,
                         shift_A=(0.4, 1.7))
    match = score(register_entry(au_library, index, query, 0.1), au_library, ("ssim",))
    assert match.ssim > 0.95


@pytest.mark.parametrize("zone", ["[1 0 0]", "[1 1 0]", "[1 1 1]"])
@pytest.mark.parametrize("true_px_A", [0.098, 0.102])
def test_a_two_percent_pixel_size_error_is_refined(au_library, zone, true_px_A):
    index = list(au_library.zone).index(zone)
    query = render_haadf(au_library.projection(index), (256, 256), true_px_A, sigma_A=0.45, rotation_deg=23.0,
                         shift_A=(0.9, 0.4))
    match = register_entry(au_library, index, query, 0.1)
    assert match.pixel_size_A == pytest.approx(true_px_A, rel=0.005)
    assert orientation_error(match, 23.0, FOLD_DEG[zone]) < 1.0


def test_a_pixel_size_far_off_stays_within_the_bounds(au_library):
    index = list(au_library.zone).index("[1 1 0]")
    query = render_haadf(au_library.projection(index), (256, 256), 0.12, sigma_A=0.45)
    match = register_entry(au_library, index, query, 0.1, pixel_bounds_A=(0.097, 0.103))
    assert 0.097 <= match.pixel_size_A <= 0.103


def chiral_index(library):
    return list(library.zone).index("[3 2 1]")


@pytest.mark.parametrize("theta", [25.0, 200.0])
def test_registration_of_a_chiral_pattern(cscl_library, theta):
    index = chiral_index(cscl_library)
    query = render_haadf(cscl_library.projection(index), (256, 256), 0.1, sigma_A=0.45, rotation_deg=theta,
                         shift_A=(1.1, 2.3))
    match = score(register_entry(cscl_library, index, query, 0.1), cscl_library, ("ssim",))
    assert not match.mirror
    # two columns of an oblique cell, Cl at half a lattice vector from Cs: only a 2-fold axis, no mirror
    assert angle_error(match.rotation_deg, theta, 180.0) < 1.0
    assert match.ssim > 0.9


@pytest.mark.parametrize("theta", [25.0, 130.0])
def test_a_mirrored_chiral_pattern_is_found_mirrored(cscl_library, theta):
    index = chiral_index(cscl_library)
    query = render_haadf(cscl_library.projection(index), (256, 256), 0.1, sigma_A=0.45, rotation_deg=theta,
                         shift_A=(1.1, 2.3), mirror=True)
    match = score(register_entry(cscl_library, index, query, 0.1), cscl_library, ("ssim",))
    assert match.mirror
    assert match.ssim > 0.9
    # the angle as one of the two conventions: turned by θ after the mirror (render's) or −θ (before it)
    assert min(angle_error(match.rotation_deg, theta, 180.0), angle_error(-match.rotation_deg, theta, 180.0)) < 1.0


def test_a_mirrored_match_reports_renders_convention(cscl_library):
    index = chiral_index(cscl_library)
    query = render_haadf(cscl_library.projection(index), (256, 256), 0.1, sigma_A=0.45, rotation_deg=25.0,
                         shift_A=(1.1, 2.3), mirror=True)
    match = register_entry(cscl_library, index, query, 0.1)
    assert match.mirror and angle_error(match.rotation_deg, 25.0, 180.0) < 1.0


@pytest.mark.parametrize("side", [
    90, 91])
def test_polar_rotation_of_a_mirror_symmetric_pattern(side):
    (proto,) = builtin_prototypes(["fcc"], ["Au"])
    p = project(proto.atoms, (1, 1, 0))
    centre = (side * 0.1, side * 0.1)
    turned = render_haadf(p, (side, side), 0.2, rotation_deg=37.0, shift_A=centre)
    upright = render_haadf(p, (side, side), 0.2, shift_A=centre)
    candidates = rotation_candidates(polar_spectrum(turned, 0.2), polar_spectrum(upright, 0.2), keep=2)
    by_mirror = {mirror: (angle, correlation) for angle, mirror, correlation in candidates}
    # the pattern has mirror lines along x and y: turned by 37°, or mirrored and turned by ∓37°, fit alike
    assert angle_error(by_mirror[False][0], 37.0, 180.0) < 0.5
    assert min(angle_error(by_mirror[True][0], 37.0, 180.0), angle_error(by_mirror[True][0], -37.0, 180.0)) < 0.5
    assert by_mirror[True][1] == pytest.approx(by_mirror[False][1], rel=0.02)


# ---- retrieval of noisy queries ------------------------------------------------------------------


def noisy_query(library, label, rotation_deg, mirror, shift_A, seed, pixel_size_A=0.1, dose=1e5):
    index = [library.label(k) for k in range(len(library))].index(label)
    (proto,) = builtin_prototypes([library.prototype[index]], [library.formula[index]])
    uvw = tuple(int(x) for x in library.uvw[index])
    conditions = QueryConditions(pixel_size_A=pixel_size_A, shape=(256, 256), rotation_deg=rotation_deg,
                                 mirror=mirror, shift_A=shift_A, dose_e_per_A2=dose)
    return index, render_query(proto.atoms, uvw, conditions, rng=seed)


# patterns no other entry of the library resembles (fcc [1 1 0] has rock salt's Mg sublattice 3 % larger,
# but not its O columns; the fluorite zones show O columns between heavy ones)
RETRIEVAL_CASES = [("fcc Au [1 1 0]", 31.0, True, (1.3, 0.7), 1),
                   ("fluorite CeO2 [1 0 0]", 77.0, False, (2.6, 0.7), 2),
                   ("fluorite CeO2 [1 1 0]", 123.0, True, (3.9, 0.7), 3),
                   ("fluorite CeO2 [2 1 1]", 301.5, False, (6.5, 0.7), 5)]


@pytest.mark.parametrize("label, rotation_deg, mirror, shift_A, seed", RETRIEVAL_CASES)
def test_a_noisy_query_finds_its_entry(mixed_library, label, rotation_deg, mirror, shift_A, seed):
    index, query = noisy_query(mixed_library, label, rotation_deg, mirror, shift_A, seed)
    matches, record = match_image(mixed_library, query, 0.1, metric="ssim", top=3, shortlist_size=8)
    assert mixed_library.label(matches[0].entry) == label
    assert matches[0].ssim > matches[1].ssim + 0.2  # and clearly
    assert matches[0].pixel_size_A == pytest.approx(0.1, rel=0.01)
    assert index in record["shortlist"] and record["pixel_size_known"]


def test_every_metric_finds_a_distinct_entry(mixed_library):
    label = "fluorite CeO2 [1 1 0]"
    _, query = noisy_query(mixed_library, label, 123.0, True, (3.9, 0.7), 3)
    for metric in ("emd", "mse", "all"):
        matches, _ = match_image(mixed_library, query, 0.1, metric=metric, top=2, shortlist_size=6)
        assert mixed_library.label(matches[0].entry) == label, metric


def test_a_noisy_query_finds_its_entry_whatever_the_window_parity(mixed_library):
    _, query = noisy_query(mixed_library, "fcc Au [2 1 1]", 250.0, False, (5.2, 0.7), 4)
    matches, _ = match_image(mixed_library, query, 0.1, metric="ssim", top=3, shortlist_size=8)
    assert mixed_library.label(matches[0].entry) == "fcc Au [2 1 1]"


def test_an_unknown_pixel_size_is_found(mixed_library):
    label = "fluorite CeO2 [1 1 0]"
    _, query = noisy_query(mixed_library, label, 40.0, False, (1.3, 0.7), 3, pixel_size_A=0.13)
    matches, record = match_image(mixed_library, query, None, metric="ssim", top=3, shortlist_size=8)
    assert mixed_library.label(matches[0].entry) == label
    assert matches[0].pixel_size_A == pytest.approx(0.13, rel=0.01)
    assert not record["pixel_size_known"]


# ---- bad input ---------------------------------------------------------------------------------


def test_noise_without_a_pixel_size_is_refused(au_library):
    noise = np.random.default_rng(6).normal(size=(128, 128))
    with pytest.raises(NanofindInputError, match="pixel.size"):
        match_image(au_library, noise, None)


@pytest.mark.parametrize("shape", [(20, 20), (20, 200), (64, 64, 3), (64,)])
def test_a_query_that_is_not_one_image_of_32_px_is_refused(au_library, shape):
    image = np.random.default_rng(7).normal(size=shape)
    for pixel_size in (0.1, None):
        with pytest.raises(NanofindInputError, match="32"):
            match_image(au_library, image, pixel_size)


def test_an_unknown_metric_is_refused(au_library):
    image = np.random.default_rng(8).normal(size=(64, 64))
    with pytest.raises(NanofindInputError, match="metric") as error:
        match_image(au_library, image, 0.1, metric="psnr")
    assert error.value.field == "--metric"
