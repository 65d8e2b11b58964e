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


#: Query points used to bound a pair's minimum distance before the full query (see below).
_BOUND_SAMPLE = 1024


def _nearest_min(tree: cKDTree, points: np.ndarray, k: int, cutoff: float) -> float:
    """Smallest distance from ``points`` to their ``k``-th nearest point of ``tree`` below ``cutoff``.

    A strided sample of the points gives an upper bound first, and the full query is pruned
    at that bound. Every pair closer than the bound is still visited, so the result is the
    same number as an unpruned query's minimum.
    """
    sample = points[:: max(1, len(points) // _BOUND_SAMPLE)]
    bound = float(tree.query(sample, k=[k], distance_upper_bound=cutoff)[0].min())
    if bound == 0.0:
        return 0.0
    # a margin so the squared-bound comparison inside cKDTree cannot drop the sampled pair
    bound = min(bound * (1 + 1e-9), cutoff) if bound < cutoff else cutoff
    return float(tree.query(points, k=[k], distance_upper_bound=bound)[0].min())


def min_distances_by_pair(positions: np.ndarray, symbols: Sequence[str], cutoff: float = 8.0,
                          lateral_period_A: Sequence[float] | None = None) -> dict[str, float]:
    """Shortest distance in Å for every element pair present, e.g. ``{"Au-C": 2.03}``.

    Exact, with one k-d tree per element: like pairs by a two-nearest-neighbour query of the
    element's atoms against their own tree, unlike pairs by a nearest-neighbour query of the
    smaller element's atoms against the larger one's tree. Memory stays proportional to the
    atom count. Pairs with no two atoms closer than ``cutoff`` are reported as ``inf``.
    """
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    symbols = np.asarray(symbols)
    elements = sorted(set(symbols.tolist()))
    p, _, box = _tree_frame(positions, None, cutoff, lateral_period_A)
    trees, points = {}, {}
    for e in elements:
        trees[e] = cKDTree(p[symbols == e], boxsize=box)
        # queried in the tree's own order, consecutive queries walk the same branches
        points[e] = trees[e].data[trees[e].indices]
    result = {}
    for k, a in enumerate(elements):
        for b in elements[k:]:
            if a == b:
                d = _nearest_min(trees[a], points[a], 2, cutoff) if len(points[a]) > 1 else np.inf
            else:
                small, big = (a, b) if len(points[a]) <= len(points[b]) else (b, a)
                d = _nearest_min(trees[big], points[small], 1, cutoff)
            result[f"{a}-{b}"] = float(d)
    return result
