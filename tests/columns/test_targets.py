"""Column-height targets: soft classes around known columns, and the weighted loss."""

import numpy as np
import pytest

from nanofind.columns.heights import read_heights
from nanofind.columns.targets import height_targets, weighted_cross_entropy
from nanofind.errors import NanofindInputError

PIXEL_A = 0.1


def test_a_column_is_its_height_class_at_the_centre_and_fades_to_background():
    xy = np.array([[2.05, 1.05]])  # Å: the centre of pixel [10, 20]
    t = height_targets(xy, [5], (24, 40), PIXEL_A, max_height=8, radius_A=0.6)
    assert t.probabilities.shape == (9, 24, 40)
    assert np.allclose(t.probabilities.sum(0), 1.0)
    assert t.probabilities[5, 10, 20] == pytest.approx(1.0)
    assert t.probabilities[0, 10, 20] == pytest.approx(0.0, abs=1e-6)
    along = t.probabilities[5, 10, 20:28]  # 0 to 0.7 Å from the centre
    assert np.all(np.diff(along[:6]) < 0) and along[-1] == 0.0  # the disc ends at 0.6 Å
    assert along[3] == pytest.approx(np.exp(-0.3 ** 2 / (2 * 0.3 ** 2)), rel=1e-5)
    assert t.weight[10, 20] == pytest.approx(1 + 4.0) and t.weight[0, 0] == 1.0
    assert t.column_index[10, 20] == 0 and t.column_index[0, 0] == -1


def test_heights_read_back_from_the_targets_and_tall_columns_share_the_top_class():
    rng = np.random.default_rng(2)
    i, j = np.meshgrid(np.arange(5), np.arange(4), indexing="ij")
    xy = np.column_stack([0.8 + 1.6 * i.ravel(), 0.8 + 1.9 * j.ravel()]) + rng.uniform(-0.1, 0.1, (20, 2))
    heights = rng.integers(1, 13, 20)
    t = height_targets(xy, heights, (80, 90), PIXEL_A, max_height=9)
    read = read_heights(t.probabilities, xy[:, 0] / PIXEL_A, xy[:, 1] / PIXEL_A, radius_px=5)
    assert np.array_equal(read.height, np.minimum(heights, 9))


def test_columns_without_atoms_are_left_out_and_bad_inputs_refused():
    t = height_targets([[1.0, 1.0], [2.0, 2.0]], [0, 3], (30, 30), PIXEL_A, max_height=4)
    assert set(np.unique(t.column_index)) == {-1, 1}
    with pytest.raises(NanofindInputError, match="one height per column"):
        height_targets([[1.0, 1.0]], [1, 2], (10, 10), PIXEL_A, max_height=3)
    with pytest.raises(NanofindInputError, match="max_height"):
        height_targets([[1.0, 1.0]], [1], (10, 10), PIXEL_A, max_height=0)


def test_weighted_cross_entropy_is_smallest_at_the_targets_and_weights_the_columns():
    import torch

    t = height_targets([[1.05, 1.05]], [2], (21, 21), PIXEL_A, max_height=3)
    target = torch.from_numpy(t.probabilities)[None]
    weight = torch.from_numpy(t.weight)[None]
    exact = torch.log(target.clamp_min(1e-6))
    uniform = torch.full_like(target, np.log(0.25))
    assert weighted_cross_entropy(exact, target, weight) < weighted_cross_entropy(uniform, target, weight)
    # a mistake at the column costs more than the same mistake in the background
    wrong_at_column = exact.clone()
    wrong_at_column[0, :, 10, 10] = torch.log(torch.tensor([0.97, 0.01, 0.01, 0.01]))
    wrong_in_background = exact.clone()
    wrong_in_background[0, :, 0, 0] = torch.log(torch.tensor([0.01, 0.01, 0.97, 0.01]))
    assert (weighted_cross_entropy(wrong_at_column, target, weight)
            > weighted_cross_entropy(wrong_in_background, target, weight))


def test_each_sublattice_has_its_own_height_classes():
    from nanofind.columns.targets import height_targets

    xy = np.array([[2.0, 2.0], [6.0, 2.0]])  # Å
    t = height_targets(xy, [3, 5], (40, 80), 0.1, max_height=6, sublattice=[0, 1], sublattices=2)
    assert t.probabilities.shape == (13, 40, 80)
    assert t.probabilities[3, 19, 19] > 0.9  # 3 atoms on sublattice 0: class 3
    assert t.probabilities[1 + 6 + 4, 19, 59] > 0.9  # 5 atoms on sublattice 1: class 1 + K + 5 - 1
    assert np.allclose(t.probabilities.sum(axis=0), 1.0)
    with pytest.raises(NanofindInputError, match="sublattices"):
        height_targets(xy, [3, 5], (40, 80), 0.1, max_height=6, sublattice=[0, 2], sublattices=2)
