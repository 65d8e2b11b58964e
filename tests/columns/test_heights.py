"""Column heights read back from hand-built class maps."""

import numpy as np
import pytest

from nanofind.columns.heights import disc_class_mass, read_heights
from nanofind.errors import NanofindInputError


def one_hot_columns(shape, xy, heights, radius, classes):
    """A (classes, rows, cols) one-hot map: background, with each column's disc set to its height."""
    labels = np.zeros(shape, dtype=np.intp)
    rows, cols = np.indices(shape)
    for (x, y), k in zip(xy, heights, strict=True):
        labels[(cols + 0.5 - x) ** 2 + (rows + 0.5 - y) ** 2 <= radius ** 2] = k
    return np.eye(classes)[labels].transpose(2, 0, 1)


def test_heights_of_a_hand_built_column_map_are_read_back_exactly():
    rng = np.random.default_rng(0)
    i, j = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    xy = np.column_stack([6 + 9.3 * i.ravel(), 5 + 9.7 * j.ravel()]) + rng.uniform(-0.5, 0.5, (30, 2))
    heights = rng.integers(1, 9, len(xy))
    class_map = one_hot_columns((52, 62), xy, heights, radius=2.6, classes=9)
    read = read_heights(class_map, xy[:, 0], xy[:, 1], radius_px=2.5)
    assert np.array_equal(read.height, heights)
    assert np.allclose(read.confidence, 1.0) and np.allclose(read.mean_height, heights)
    # a disc over background only has no height
    empty = read_heights(class_map, [1.0], [50.0], radius_px=1.0)
    assert empty.height[0] == 0 and empty.confidence[0] == 0


def test_mixed_discs_take_the_heaviest_class_and_its_share_as_confidence():
    class_map = np.zeros((4, 11, 11))
    class_map[0] = 1.0
    rows, cols = np.indices((11, 11))
    disc = (cols + 0.5 - 5.5) ** 2 + (rows + 0.5 - 5.5) ** 2 <= 2.0 ** 2  # 13 pixels
    class_map[:, disc] = np.array([0.1, 0.0, 0.6, 0.3])[:, None]
    read = read_heights(class_map, [5.5], [5.5], radius_px=2.0)
    assert read.height[0] == 2
    assert read.confidence[0] == pytest.approx(0.6 / 0.9)
    assert read.mean_height[0] == pytest.approx((2 * 0.6 + 3 * 0.3) / 0.9)
    assert disc_class_mass(class_map, [5.5], [5.5], 2.0)[0] == pytest.approx(13 * np.array([0.1, 0.0, 0.6, 0.3]))


def test_bad_class_maps_are_refused():
    with pytest.raises(NanofindInputError, match="classes, rows, columns"):
        read_heights(np.zeros((5, 5)), [1.0], [1.0], radius_px=1.0)
    with pytest.raises(NanofindInputError, match="radius"):
        read_heights(np.zeros((2, 5, 5)), [1.0], [1.0], radius_px=0)


def test_heights_and_sublattices_of_a_two_element_map_are_read_back_exactly():
    rng = np.random.default_rng(1)
    xy = np.column_stack([6 + 10.0 * np.arange(8), np.full(8, 8.0)]) + rng.uniform(-0.4, 0.4, (8, 2))
    heights, lattice = rng.integers(1, 6, 8), rng.integers(0, 2, 8)
    max_height = 5
    class_map = one_hot_columns((16, 86), xy, 1 + lattice * max_height + heights - 1, radius=2.6,
                                classes=1 + 2 * max_height)
    read = read_heights(class_map, xy[:, 0], xy[:, 1], radius_px=2.5, sublattices=2)
    assert np.array_equal(read.height, heights) and np.array_equal(read.sublattice, lattice)
    with pytest.raises(NanofindInputError, match="sublattices"):
        read_heights(class_map, xy[:, 0], xy[:, 1], radius_px=2.5, sublattices=3)  # 10 classes into 3


def test_columns_are_the_sub_pixel_peaks_of_a_probability_map():
    from nanofind.columns.heights import columns_from_probability
    from nanofind.columns.synthetic import render_columns

    truth = np.array([[10.3, 12.7], [24.8, 12.2], [17.45, 30.6], [40.0, 40.0]])  # px, origin at the corner
    probability = render_columns((52, 52), truth, sigma_px=1.8, amplitude=np.array([0.95, 0.9, 0.8, 0.3]))
    x, y, peak = columns_from_probability(probability, min_separation_px=4, radius_px=3, threshold=0.5)
    assert len(x) == 3  # the faint fourth stays below the threshold
    order = np.argsort(x)
    assert np.allclose(np.column_stack([x, y])[order], truth[[0, 2, 1]], atol=0.08)
    assert peak.min() > 0.75
