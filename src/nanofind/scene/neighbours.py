"""Neighbour searches with optional lateral (x, y) periodicity.

Scenes are periodic in x and y (the multislice cell) and open along the beam (z). scipy's
cKDTree supports periodic boxes on all axes; z is made effectively open by padding its
box length by more than the cut-off, so no pair can wrap along z.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree


def _tree_frame(points: np.ndarray, others: np.ndarray | None, cutoff: float,
                lateral_period_A: Sequence[float] | None):
    if lateral_period_A is None:
        return points, others, None
    lx, ly = (float(v) for v in lateral_period_A)
    allz = points[:, 2] if others is None else np.concatenate([points[:, 2], others[:, 2]])
    z0 = allz.min() if allz.size else 0.0
    zspan = (allz.max() - z0) if allz.size else 0.0
    box = np.array([lx, ly, zspan + 2 * cutoff + 1.0])

    def wrap(p):
        q = np.array(p, dtype=float, copy=True)
        q[:, 0] %= lx
        q[:, 1] %= ly
        q[:, 2] -= z0
        # float modulo can return exactly the period, which cKDTree rejects
        q[:, 0][q[:, 0] >= lx] = 0.0
        q[:, 1][q[:, 1] >= ly] = 0.0
        return q

    return wrap(points), (None if others is None else wrap(others)), box


def pairs_within(points: np.ndarray, cutoff: float, others: np.ndarray | None = None,
                 lateral_period_A: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs closer than ``cutoff`` Å.

    Parameters
    ----------
    points : ndarray of shape (N, 3)
        Positions, Å.
    cutoff : float
        Largest distance reported, Å.
    others : ndarray of shape (M, 3), optional
        Second set. Without it, pairs within ``points`` are returned with ``i < j``.
    lateral_period_A : (float, float), optional
        Periods along x and y; z is never periodic.

    Returns
    -------
    i, j, distance : ndarrays
        Indices into ``points`` and (``others`` or ``points``), and distances in Å.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    others_arr = None if others is None else np.asarray(others, dtype=float).reshape(-1, 3)
    empty = (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    if len(points) == 0 or (others_arr is not None and len(others_arr) == 0):
        return empty
    p, o, box = _tree_frame(points, others_arr, cutoff, lateral_period_A)
    tree = cKDTree(p, boxsize=box)
    if o is None:
        ij = tree.query_pairs(cutoff, output_type="ndarray")
        if len(ij) == 0:
            return empty
        i, j = ij[:, 0], ij[:, 1]
        delta = p[i] - p[j]
    else:
        res = tree.sparse_distance_matrix(cKDTree(o, boxsize=box), cutoff, output_type="ndarray")
        if len(res) == 0:
            return empty
        return res["i"].astype(int), res["j"].astype(int), res["v"].astype(float)
    if box is not None:
        delta[:, :2] -= box[:2] * np.round(delta[:, :2] / box[:2])
    return i, j, np.linalg.norm(delta, axis=1)


def min_distances_by_pair(positions: np.ndarray, symbols: Sequence[str], cutoff: float = 8.0,
                          lateral_period_A: Sequence[float] | None = None) -> dict[str, float]:
    """Shortest distance in Å for every element pair present, e.g. ``{"Au-C": 2.03}``.

    Uses nearest-neighbour queries per element, so memory stays proportional to the atom
    count. Pairs with no two atoms closer than ``cutoff`` are reported as ``inf``.
    """
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    symbols = np.asarray(symbols)
    elements = sorted(set(symbols.tolist()))
    p, _, box = _tree_frame(positions, None, cutoff, lateral_period_A)
    trees = {e: cKDTree(p[symbols == e], boxsize=box) for e in elements}
    result = {}
    for k, a in enumerate(elements):
        pa = p[symbols == a]
        for b in elements[k:]:
            if a == b:
                d = trees[a].query(pa, k=2, distance_upper_bound=cutoff)[0][:, 1] if len(pa) > 1 else np.array([np.inf])
            else:
                d = trees[b].query(pa, distance_upper_bound=cutoff)[0]
            result[f"{a}-{b}"] = float(d.min())
    return result
