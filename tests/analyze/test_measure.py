import math

import numpy as np
import pytest

from nanofind.analyze.measure import (
    PARTICLE_COLUMNS,
    CleaningSettings,
    clean_mask,
    measure_particles,
    split_particles,
    summarise,
)


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_disc_of_known_radius_in_nm():
    pixel_A = 0.5  # 20 px = 1 nm
    mask = _disc((200, 200), (90, 110), 60)  # radius 3 nm
    labels = split_particles(clean_mask(mask, pixel_A))
    (row,) = measure_particles(labels, pixel_size_A=pixel_A)
    assert tuple(row) == PARTICLE_COLUMNS
    assert row["equivalent_diameter_nm"] == pytest.approx(6.0, rel=0.01)
    assert row["area_nm2"] == pytest.approx(math.pi * 9, rel=0.02)
    assert row["centroid_x_nm"] == pytest.approx(110.5 * 0.05, abs=0.01)
    assert row["centroid_y_nm"] == pytest.approx(90.5 * 0.05, abs=0.01)
    assert row["circularity"] > 0.9 and row["solidity"] > 0.98 and row["aspect_ratio"] < 1.02
    assert not row["touches_edge"] and not row["agglomerate"]


def test_two_touching_discs_are_split():
    mask = _disc((160, 240), (80, 80), 40) | _disc((160, 240), (80, 155), 40)  # 5 px overlap
    labels = split_particles(clean_mask(mask, None), depth=0.3)
    rows = measure_particles(labels)
    assert len(rows) == 2
    for row in rows:
        assert row["equivalent_diameter_px"] == pytest.approx(80, rel=0.06)
        assert row["equivalent_diameter_nm"] is None and row["area_nm2"] is None


def test_ragged_outline_stays_one_particle():
    # a disc whose outline carries small bumps (as a noisy probability map gives): each bump is a
    # local maximum of the distance map, but far shallower than the disc, so nothing splits off
    mask = _disc((200, 200), (100, 100), 45)
    for k in range(14):
        a = 2 * math.pi * k / 14
        mask |= _disc((200, 200), (100 + 47 * math.sin(a), 100 + 47 * math.cos(a)), 6)
    labels = split_particles(clean_mask(mask, None, CleaningSettings(opening_px=0, closing_px=0)))
    assert labels.max() == 1
    # while two discs on a neck still split, with no slivers beside them
    pair = _disc((200, 300), (100, 95), 45) | _disc((200, 300), (100, 205), 45)
    pair[95:106, 95:206] = True
    for k in range(10):
        a = 2 * math.pi * k / 10
        pair |= _disc((200, 300), (100 + 47 * math.sin(a), 95 + 47 * math.cos(a)), 6)
    rows = measure_particles(split_particles(pair))
    assert len(rows) == 2 and min(r["area_px"] for r in rows) > 0.9 * math.pi * 45**2
    # and a small particle touching a large one splits off, though it rises less than 0.3 of the
    # large one's radius above the neck
    small_on_large = _disc((200, 200), (100, 80), 45) | _disc((200, 200), (100, 138), 16)
    rows = measure_particles(split_particles(small_on_large))
    assert sorted(round(r["equivalent_diameter_px"]) for r in rows) == pytest.approx([32, 90], abs=4)


def test_particle_ids_are_the_label_values():
    # the ids in particles.csv are the values of the label image written beside it, gaps and all
    labels = np.zeros((100, 100), np.int32)
    labels[_disc((100, 100), (30, 30), 10)] = 3
    labels[_disc((100, 100), (70, 60), 15)] = 7
    rows = measure_particles(labels)
    assert [r["particle_id"] for r in rows] == [3, 7]
    assert [r["area_px"] for r in rows] == [int((labels == 3).sum()), int((labels == 7).sum())]


def test_ellipse_stays_whole_and_orientation_follows_the_major_axis():
    yy, xx = np.mgrid[0:200, 0:200]
    a, b, angle = 60, 25, math.radians(30)  # major axis 30 degrees above the x axis on screen
    x, y = xx - 100, -(yy - 100)  # y up
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    mask = (u / a) ** 2 + (v / b) ** 2 <= 1
    (row,) = measure_particles(split_particles(mask))
    assert row["orientation_deg"] == pytest.approx(30, abs=1.0)
    assert row["aspect_ratio"] == pytest.approx(a / b, rel=0.03)


def test_edge_particle_flagged_and_small_specks_removed():
    mask = _disc((120, 120), (60, 5), 20) | _disc((120, 120), (30, 90), 2)
    labels = split_particles(clean_mask(mask, None, CleaningSettings(min_area_px=40)))
    rows = measure_particles(labels)
    assert len(rows) == 1 and rows[0]["touches_edge"]
    summary = summarise(rows, labels)
    assert summary["count"] == 1 and summary["count_not_touching_edge"] == 0 and summary["unit"] == "px"


def test_irregular_region_is_an_agglomerate():
    # an L of two bars is far from convex
    mask = np.zeros((120, 120), bool)
    mask[20:100, 20:40] = True
    mask[80:100, 20:100] = True
    (row,) = measure_particles(split_particles(mask, depth=0.9))
    assert row["agglomerate"] and row["solidity"] < 0.85


def test_stages_accept_a_micrograph(tmp_path):
    from nanofind.analyze.pipeline import EXAMPLES_DIR, analyze_frame
    from nanofind.io import read_micrograph
    from nanofind.learn.model_file import load_model

    model, card = load_model()
    micrograph = read_micrograph(EXAMPLES_DIR / "example_02.mrc")
    rows, labels, prob = analyze_frame(model, card, micrograph)
    same, _, _ = analyze_frame(model, card, micrograph.array, micrograph.pixel_size_A)
    assert rows == same and rows and rows[0]["equivalent_diameter_nm"] is not None


def test_disk_morphology_by_distance_transform_equals_scipy():
    from scipy import ndimage as ndi
    from skimage.morphology import disk

    from nanofind.analyze.measure import dilate_disk, erode_disk

    rng = np.random.default_rng(0)
    for _ in range(20):
        shape = tuple(int(n) for n in rng.integers(5, 50, 2))
        mask = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3)) > rng.uniform(0.4, 0.6)
        for r in range(7):
            np.testing.assert_array_equal(erode_disk(mask, r), ndi.binary_erosion(mask, disk(r)))
            np.testing.assert_array_equal(dilate_disk(mask, r), ndi.binary_dilation(mask, disk(r)))
    assert not dilate_disk(np.zeros((8, 8), bool), 3).any()


def test_cleaning_at_an_implausible_pixel_size_stays_bounded():
    # 0.2 nm at 1e-4 Å per pixel would be a 20 000 px radius; it is capped, and the mask survives the call
    mask = np.zeros((128, 128), bool)
    mask[30:100, 40:110] = True
    cleaned = clean_mask(mask, 1e-4)
    assert cleaned.shape == mask.shape


def test_centroids_keep_their_rounding_at_decimal_ties():
    # 23 pixels in row 1 and 17 in row 2: the centroid's row is 57/40 = 1.425, so its pixel-centre
    # coordinate is the decimal tie 1.925, which particles.csv has always written as 1.92
    labels = np.zeros((6, 30), int)
    labels[1, :23] = 1
    labels[2, :17] = 1
    row = measure_particles(labels).rows()[0]
    assert row["area_px"] == 40
    assert row["centroid_y_px"] == 1.92


def test_clean_up_follows_the_particles_when_the_pixel_size_is_unknown():
    from nanofind.analyze.measure import cleaning_for_particles, find_particles

    # a hexagonal-ish field of 6 px discs two pixels apart: the default px clean-up (2 px opening,
    # 40 px minimum area) erases them all; scaled to their size, every one is found on its own
    yy, xx = np.indices((120, 120))
    mask = np.zeros((120, 120), bool)
    centres = [(r, c + (4 if (r // 8) % 2 else 0)) for r in range(8, 112, 8) for c in range(8, 108, 8)]
    for r, c in centres:
        mask |= (yy - r) ** 2 + (xx - c) ** 2 <= 9
    assert find_particles(mask, None).max() == 0
    scaled = cleaning_for_particles(CleaningSettings(), 6.0)
    assert (scaled.opening_px, scaled.closing_px) == (0.0, 0.0) and scaled.min_area_px == pytest.approx(7.1)
    assert find_particles(mask, None, scaled).max() == len(centres)
    # particles of HRTEM size keep the defaults, and so do nm settings and an unmeasured size
    assert cleaning_for_particles(CleaningSettings(), 60.0) == CleaningSettings()
    assert cleaning_for_particles(CleaningSettings(), None) == CleaningSettings()
    assert cleaning_for_particles(CleaningSettings(), 12.0).opening_nm == CleaningSettings().opening_nm
