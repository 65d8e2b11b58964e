"""Columns linked through frames: known shifts, columns that appear and vanish."""

import numpy as np
import pytest

from nanofind.columns.synthetic import lattice_positions
from nanofind.columns.tracks import frame_drift, link_frames, surface_columns, track_table
from nanofind.errors import NanofindInputError


def test_tracks_follow_columns_across_three_shifted_frames():
    rng = np.random.default_rng(7)
    lattice = lattice_positions((60, 60), 3.9, angle_deg=12, margin_px=2, rng=rng)  # Å, CeO2-like spacing
    n = len(lattice)
    truth_ids = [np.arange(n), np.arange(n), np.arange(n)]
    frames = [lattice.copy()]
    # frame 1: drifted by (1.1, -0.7) Å (more than the 0.5 Å tolerance) with a little jitter;
    # column 0 vanished and a new one appeared far from any other
    shift1 = np.array([1.1, -0.7])
    f1 = lattice + shift1 + rng.normal(0, 0.05, lattice.shape)
    keep = np.arange(n) != 0
    frames.append(np.vstack([f1[keep], [[-30.0, -30.0]]]))
    truth_ids[1] = np.concatenate([np.arange(n)[keep], [n]])
    # frame 2: a further (0.4, 0.9) Å, listed in reverse order
    f2 = lattice + shift1 + np.array([0.4, 0.9]) + rng.normal(0, 0.05, lattice.shape)
    frames.append(f2[::-1])
    truth_ids[2] = np.arange(n)[::-1]

    ids, drifts = link_frames(frames, tolerance=0.5, drift_search=1.9)
    assert drifts[1] == pytest.approx(shift1, abs=0.05)
    assert drifts[2] == pytest.approx(shift1 + [0.4, 0.9], abs=0.05)
    # same column, same id; columns present in frames 0 and 2 but not in 1 restart (consecutive linking)
    assert np.array_equal(ids[0], truth_ids[0])
    assert np.array_equal(ids[1][:-1], truth_ids[1][:-1]) and ids[1][-1] == n  # the newcomer gets the next id
    column0_in_frame2 = ids[2][np.flatnonzero(truth_ids[2] == 0)[0]]
    assert column0_in_frame2 == n + 1
    others = truth_ids[2] != 0
    assert np.array_equal(ids[2][others], truth_ids[2][others])


def test_without_drift_search_a_large_shift_breaks_every_track():
    lattice = lattice_positions((30, 30), 3.9, rng=1)
    ids, _ = link_frames([lattice, lattice + [1.5, 0.0]], tolerance=0.5)
    assert set(ids[1]).isdisjoint(ids[0])


def test_frame_drift_of_a_pure_shift_and_bad_tolerance():
    points = lattice_positions((40, 40), 4.0, angle_deg=5, rng=2)
    assert frame_drift(points, points + [0.3, -1.2], search=2.0) == pytest.approx([0.3, -1.2], abs=1e-9)
    with pytest.raises(NanofindInputError, match="tolerance"):
        link_frames([points], tolerance=0)


def test_surface_columns_of_a_square_block_are_its_rim():
    i, j = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    block = np.column_stack([i.ravel(), j.ravel()]) * 3.9
    surface = surface_columns(block, 3.9)
    rim = (i.ravel() % 5 == 0) | (j.ravel() % 4 == 0)
    assert np.array_equal(surface, rim) and surface.sum() == 2 * 6 + 2 * 5 - 4


def test_track_table_puts_each_track_in_one_row_and_gaps_as_nan():
    ids = [np.array([0, 1, 2]), np.array([2, 0, 3]), np.array([0, 3])]
    values = [np.array([1.0, 2.0, 3.0]), np.array([30.0, 10.0, 40.0]), np.array([100.0, 400.0])]
    tracks, table = track_table(ids, values)
    assert list(tracks) == [0, 2, 3]  # track 1 lived one frame only
    assert np.array_equal(table[0], [1.0, 10.0, 100.0])
    assert np.array_equal(table[1][:2], [3.0, 30.0]) and np.isnan(table[1][2])
    assert np.isnan(table[2][0]) and np.array_equal(table[2][1:], [40.0, 400.0])
