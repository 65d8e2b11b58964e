"""Synthetic images of atomic columns with exactly known positions, for tests and benchmarks.

Positions follow :mod:`nanofind.columns.peaks`: px, origin at the top-left corner of the top-left
pixel (the centre of pixel ``[row, col]`` is at ``x = col + 0.5, y = row + 0.5``).
"""

from __future__ import annotations

import numpy as np


def lattice_positions(shape: tuple[int, int], spacing_px: float, *, angle_deg: float = 0.0, jitter_px: float = 0.0,
                      margin_px: float = 0.0, hexagonal: bool = False, rng=None) -> np.ndarray:
    """(n, 2) column positions ``(x_px, y_px)`` of a square or hexagonal lattice filling ``shape``.

    The lattice is turned by ``angle_deg`` about a random origin, so that columns fall at every
    sub-pixel offset; each position then moves by a Gaussian ``jitter_px`` in x and y. Positions
    within ``margin_px`` of the border are dropped.
    """
    rng = np.random.default_rng(rng)
    h, w = shape
    reach = int(np.ceil(np.hypot(h, w) / spacing_px)) + 2
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    i, j = i.ravel().astype(np.float64), j.ravel().astype(np.float64)
    if hexagonal:
        u, v = spacing_px * (i + 0.5 * j), spacing_px * (np.sqrt(3) / 2) * j
    else:
        u, v = spacing_px * i, spacing_px * j
    turn = np.deg2rad(angle_deg)
    origin = np.array([w, h]) / 2 + rng.uniform(0, spacing_px, 2)
    x = origin[0] + u * np.cos(turn) - v * np.sin(turn)
    y = origin[1] + u * np.sin(turn) + v * np.cos(turn)
    xy = np.column_stack([x, y]) + rng.normal(0, jitter_px, (len(x), 2)) * (jitter_px > 0)
    inside = ((xy[:, 0] >= margin_px) & (xy[:, 0] <= w - margin_px)
              & (xy[:, 1] >= margin_px) & (xy[:, 1] <= h - margin_px))
    return xy[inside]


def render_columns(shape: tuple[int, int], xy_px: np.ndarray, *, sigma_px: float, amplitude=1.0,
                   background: float = 0.0) -> np.ndarray:
    """A noiseless image of Gaussian columns, sampled at the pixel centres.

    A 2D Gaussian of ``sigma_px`` and ``amplitude`` (scalar or one per column) at each
    ``(x_px, y_px)``, on a flat ``background``.
    """
    h, w = shape
    image = np.full(shape, background, dtype=np.float64)
    xy = np.asarray(xy_px, dtype=np.float64).reshape(-1, 2)
    if not len(xy):
        return image
    amp = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (len(xy),))
    reach = int(np.ceil(4 * sigma_px))
    oy, ox = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    rows = np.floor(xy[:, 1]).astype(np.intp)[:, None] + oy.ravel()
    cols = np.floor(xy[:, 0]).astype(np.intp)[:, None] + ox.ravel()
    d2 = (cols + 0.5 - xy[:, 0:1]) ** 2 + (rows + 0.5 - xy[:, 1:2]) ** 2
    value = amp[:, None] * np.exp(-d2 / (2 * sigma_px ** 2))
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    np.add.at(image, (rows[inside], cols[inside]), value[inside])
    return image


def haadf_lattice(shape: tuple[int, int] = (512, 512), *, spacing_px: float = 11.0, sigma_px: float = 2.0,
                  counts: float = 1000.0, background: float = 0.05, angle_deg: float | None = None,
                  jitter_px: float = 0.3, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson-noisy HAADF-like image of a square lattice and its true column positions.

    ``counts``: expected electrons at a column's peak (the dose); ``background``: the flat level
    between columns, as a fraction of a peak. Returns the image (float32 counts) and ``(n, 2)``
    true ``(x_px, y_px)``.
    """
    rng = np.random.default_rng(rng)
    angle = rng.uniform(0, 90) if angle_deg is None else angle_deg
    xy = lattice_positions(shape, spacing_px, angle_deg=angle, jitter_px=jitter_px, margin_px=0.0, rng=rng)
    clean = render_columns(shape, xy, sigma_px=sigma_px, amplitude=1.0, background=background)
    return rng.poisson(clean * counts).astype(np.float32), xy
