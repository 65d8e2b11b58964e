"""Column heights (atoms along the beam) read from a per-pixel class map, as in seed 001.

A column-height network gives, for every pixel, probabilities of K + 1 classes: background (0)
and heights 1…K. A column's height is the class with the most probability mass inside its disc,
among the height classes; its confidence is that class's share of the disc's height mass.
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
    ``mean_height`` (probability-weighted mean of the height classes) and ``mass`` (the disc's
    summed height probability, px).
    """

    height: np.ndarray
    confidence: np.ndarray
    mean_height: np.ndarray
    mass: np.ndarray


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


def read_heights(class_map: np.ndarray, x_px, y_px, *, radius_px: float) -> ColumnHeights:
    """Heights of the columns at ``(x_px, y_px)`` from a ``(1 + K, rows, cols)`` class map.

    Class 0 is background; class k ≥ 1 is a column of k atoms. See :func:`disc_class_mass`.
    """
    mass = disc_class_mass(class_map, x_px, y_px, radius_px)[:, 1:]
    total = mass.sum(axis=1)
    best = mass.argmax(axis=1) if mass.shape[1] else np.zeros(len(mass), np.intp)
    has = total > 0
    safe = np.where(has, total, 1.0)
    heights = np.arange(1, mass.shape[1] + 1)
    return ColumnHeights(height=np.where(has, best + 1, 0),
                         confidence=np.where(has, mass[np.arange(len(mass)), best] / safe, 0.0),
                         mean_height=np.where(has, mass @ heights / safe, 0.0), mass=total)
