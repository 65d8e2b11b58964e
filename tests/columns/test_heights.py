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
