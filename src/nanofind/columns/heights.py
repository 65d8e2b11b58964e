"""Column heights (atoms along the beam) read from a per-pixel class map, as in seed 001.

A column-height network gives, for every pixel, probabilities of K + 1 classes: background (0)
and heights 1…K. A column's height is the class with the most probability mass inside its disc,
among the height classes; its confidence is that class's share of the disc's height mass. With
several sublattices (classes ``1 + s·K + h − 1``, see :mod:`nanofind.columns.targets`) the height
mass of each height is summed over the sublattices, and the column's sublattice is the one with
the most mass.
Positions follow :mod:`nanofind.columns.peaks` (px, origin at the top-left corner of the top-left
pixel, x along columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanofind.errors import NanofindInputError


@dataclass(frozen=True)
class ColumnHeights:
    """Heights read for a set of columns, one entry per column.

    ``height`` (atoms; 0 where the disc holds no height mass), ``confidence`` (0–1),
    ``mean_height`` (probability-weighted mean of the height classes), ``mass`` (the disc's
    summed height probability, px) and ``sublattice`` (index, 0 with one sublattice).
    """

    height: np.ndarray
    confidence: np.ndarray
    mean_height: np.ndarray
    mass: np.ndarray
    sublattice: np.ndarray | None = None


def disc_class_mass(class_map: np.ndarray, x_px, y_px, radius_px: float) -> np.ndarray:
    """Summed probability of every class inside each column's disc: ``(n, classes)``.

    ``class_map``: ``(classes, rows, cols)`` probabilities (or one-hot labels). A pixel belongs to
    a disc when its centre lies within ``radius_px`` of the column's position; pixels beyond the
    border count as nothing.
    """
    p = np.asarray(class_map)
    if p.ndim != 3:
        raise NanofindInputError(f"class map must be (classes, rows, columns), got shape {p.shape}")
    if not radius_px > 0:
        raise NanofindInputError(f"disc radius must be > 0 px, got {radius_px}")
    x = np.asarray(x_px, dtype=np.float64).ravel()
    y = np.asarray(y_px, dtype=np.float64).ravel()
    classes, h, w = p.shape
    reach = int(np.ceil(radius_px)) + 1
    oy, ox = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    rows = np.floor(y).astype(np.intp)[:, None] + oy.ravel()
    cols = np.floor(x).astype(np.intp)[:, None] + ox.ravel()
    inside = ((cols + 0.5 - x[:, None]) ** 2 + (rows + 0.5 - y[:, None]) ** 2 <= radius_px ** 2)
    inside &= (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = np.clip(rows, 0, h - 1) * w + np.clip(cols, 0, w - 1)
    values = p.reshape(classes, -1)[:, flat]  # (classes, n, window)
    return (values * inside[None]).sum(axis=2).T


def read_heights(class_map: np.ndarray, x_px, y_px, *, radius_px: float, sublattices: int = 1) -> ColumnHeights:
    """Heights of the columns at ``(x_px, y_px)`` from a ``(1 + sublattices·K, rows, cols)`` class map.

    Class 0 is background; class ``1 + s·K + k − 1`` a column of k atoms on sublattice s. See
    :func:`disc_class_mass`.
    """
    if int(sublattices) < 1 or (np.shape(class_map)[0] - 1) % int(sublattices):
        raise NanofindInputError(f"a class map of {np.shape(class_map)[0]} classes cannot hold {sublattices} "
                                 "sublattices of equal height classes")
    per_class = disc_class_mass(class_map, x_px, y_px, radius_px)[:, 1:]
    per_lattice = per_class.reshape(len(per_class), int(sublattices), -1)
    mass = per_lattice.sum(axis=1)
    lattice = per_lattice.sum(axis=2).argmax(axis=1) if len(per_class) else np.zeros(0, np.intp)
    total = mass.sum(axis=1)
    best = mass.argmax(axis=1) if mass.shape[1] else np.zeros(len(mass), np.intp)
    has = total > 0
    safe = np.where(has, total, 1.0)
    heights = np.arange(1, mass.shape[1] + 1)
    return ColumnHeights(height=np.where(has, best + 1, 0),
                         confidence=np.where(has, mass[np.arange(len(mass)), best] / safe, 0.0),
                         mean_height=np.where(has, mass @ heights / safe, 0.0), mass=total,
                         sublattice=lattice)


def columns_from_probability(column_probability: np.ndarray, *, min_separation_px: float, radius_px: float,
                             threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns as the peaks of a network's column-probability map (1 − background), sub-pixel.

    A peak is a local maximum above ``threshold``; of two closer than ``min_separation_px`` the
    higher stays; its position is the centre of mass of the upper half of a disc of ``radius_px``
    around it (:func:`nanofind.columns.peaks.refine_com`). Returns ``x_px, y_px`` (origin at the
    top-left corner of the top-left pixel, x along columns) and the peak probabilities.
    """
    from scipy import ndimage as ndi

    from nanofind.columns.peaks import _keep_separated, refine_com

    p = np.asarray(column_probability, dtype=np.float32)
    if p.ndim != 2:
        raise NanofindInputError(f"probability map must be 2D, got shape {p.shape}")
    if not (min_separation_px >= 1 and radius_px > 0):
        raise NanofindInputError(f"min separation must be >= 1 px and radius > 0 px, got {min_separation_px} and "
                                 f"{radius_px}")
    local = ndi.maximum_filter(p, size=2 * max(1, int(min_separation_px / 2)) + 1, mode="nearest")
    rows, cols = np.nonzero((p == local) & (p > threshold))
    strength = p[rows, cols]
    kept = _keep_separated(rows.astype(np.float64), cols.astype(np.float64), strength, float(min_separation_px))
    kept = kept[np.lexsort((cols[kept], rows[kept]))]
    rows, cols, strength = rows[kept].astype(np.float64), cols[kept].astype(np.float64), strength[kept]
    if len(rows):
        rows, cols = refine_com(p, rows, cols, half_px=max(1, int(round(radius_px))))
    return cols + 0.5, rows + 0.5, strength.astype(np.float64)
