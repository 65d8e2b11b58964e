"""Columns linked through the frames of a time series into tracks."""

from __future__ import annotations

import numpy as np

from nanofind.errors import NanofindInputError


def frame_drift(previous_xy: np.ndarray, current_xy: np.ndarray, *, search: float, rounds: int = 3) -> np.ndarray:
    """The shift ``(dx, dy)`` that carries ``previous_xy`` onto ``current_xy`` (their units).

    The median displacement to the nearest current column within ``search`` of each previous one,
    re-estimated ``rounds`` times after applying it. It finds drift up to about half the column
    spacing (``search`` should be about that); beyond it a lattice looks the same shifted by one
    spacing.
    """
    from scipy.spatial import cKDTree

    previous_xy = np.asarray(previous_xy, dtype=np.float64).reshape(-1, 2)
    current_xy = np.asarray(current_xy, dtype=np.float64).reshape(-1, 2)
    shift = np.zeros(2)
    if not len(previous_xy) or not len(current_xy):
        return shift
    tree = cKDTree(current_xy)
    for _ in range(rounds):
        distance, index = tree.query(previous_xy + shift, distance_upper_bound=search)
        found = np.isfinite(distance)
        if not found.any():
            break
        shift = shift + np.median(current_xy[index[found]] - (previous_xy[found] + shift), axis=0)
    return shift


def link_frames(frames_xy: list[np.ndarray], *, tolerance: float, drift_search: float | None = None,
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Track ids for the columns of every frame, and each frame's estimated drift.

    ``frames_xy``: one ``(n_t, 2)`` array of ``(x, y)`` positions per frame (any one unit, for
    example Å). Consecutive frames are linked one to one: after removing the drift between them
    (:func:`frame_drift`, searching ``drift_search``; none when omitted), a column continues the
    track of the previous frame's column that is its mutual nearest neighbour within ``tolerance``.
    Every other column starts a new track. Ids count from 0 in order of first appearance. Returns
    ``(ids, drifts)``: per frame an int array of ids, and the cumulative ``(dx, dy)`` drift since the
    first frame.
    """
    from scipy.spatial import cKDTree

    if tolerance <= 0:
        raise NanofindInputError(f"track tolerance must be > 0, got {tolerance}")
    ids: list[np.ndarray] = []
    drifts: list[np.ndarray] = []
    next_id = 0
    total = np.zeros(2)
    previous = None
    for xy in frames_xy:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        frame_ids = np.full(len(xy), -1, dtype=np.int64)
        if previous is not None and len(previous) and len(xy):
            shift = frame_drift(previous, xy, search=drift_search) if drift_search else np.zeros(2)
            total = total + shift
            moved = previous + shift
            d_fwd, fwd = cKDTree(xy).query(moved, distance_upper_bound=tolerance)
            d_back, back = cKDTree(moved).query(xy, distance_upper_bound=tolerance)
            found = np.flatnonzero(np.isfinite(d_fwd))
            mutual = found[back[fwd[found]] == found]
            frame_ids[fwd[mutual]] = ids[-1][mutual]
        fresh = frame_ids < 0
        frame_ids[fresh] = np.arange(next_id, next_id + fresh.sum())
        next_id += int(fresh.sum())
        ids.append(frame_ids)
        drifts.append(total.copy())
        previous = xy
    return ids, drifts


def surface_columns(xy: np.ndarray, spacing: float) -> np.ndarray:
    """Which columns lie on a surface: fewer neighbours within 1.3 spacings than the full count.

    ``xy``: ``(n, 2)`` positions, ``spacing`` the nearest-neighbour distance, in one unit. Inside a
    crystal every column has the same number of nearest neighbours (4 in a square projection, 6
    in a hexagonal one); at a surface or step some are missing. The full count is the 90th
    percentile of the counts: in a small particle most columns may be at a surface, and a few
    spurious neighbours must not raise it.
    """
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) < 3:
        return np.ones(len(xy), dtype=bool)
    counts = np.array([len(n) - 1 for n in cKDTree(xy).query_ball_point(xy, 1.3 * spacing)])
    return counts < np.percentile(counts, 90, method="nearest")


def track_table(ids: list[np.ndarray], values: list[np.ndarray], *, min_frames: int = 2
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-track series: ``(track ids, values[track, frame])`` with NaN where a track is absent.

    Only tracks seen in at least ``min_frames`` frames are kept.
    """
    frames = len(ids)
    known = np.unique(np.concatenate(ids)) if frames else np.zeros(0, np.int64)
    row_of = {t: k for k, t in enumerate(known)}
    table = np.full((len(known), frames), np.nan)
    for f, (frame_ids, frame_values) in enumerate(zip(ids, values, strict=True)):
        table[[row_of[t] for t in frame_ids], f] = frame_values
    seen = np.isfinite(table).sum(1) >= min_frames
    return known[seen], table[seen]
