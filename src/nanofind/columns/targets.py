"""Training targets of a column-height network (seed 001): soft per-pixel height classes and weights.

Seed 001 classifies every pixel as background or as a column of a given number of atoms, with the
target labels "smoothed so that they change gradually to the background" and a spatially weighted
cross-entropy. Here a pixel within ``radius_A`` of a column centre belongs to that column (the
nearest one when discs touch); its target is the column's height class with probability
``exp(-d² / 2σ²)`` at distance ``d`` (σ = ``radius_A`` / 2, so 1 at the centre and 0.14 at the
disc's edge), the rest background. Heights above ``max_height`` go to the top class ("that many or
more"). With several sublattices (the elements of a compound, CeO2 [110]: Ce and O columns) every
sublattice has its own K height classes: class ``1 + s·K + (h − 1)`` is a column of ``h`` atoms on
sublattice ``s``. The weight of a pixel is ``1 + column_weight`` times its column probability, so that the
few column pixels count against the many background ones.

Positions follow :mod:`nanofind.columns.peaks`: Å (or px) from the top-left corner of the top-left
pixel, x along columns, y along rows; the pixel ``[r, c]`` has its centre at ``(c + 0.5, r + 0.5)``
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanofind.errors import NanofindInputError

#: Default disc radius of a column, Å: under half the closest projected column distance of the
#: supported crystals' low-index views that are meant to be told apart (CeO2 [110]: Ce-O 1.35 Å).
COLUMN_RADIUS_A = 0.6
#: Default extra weight of a column's centre over background in the weighted cross-entropy.
COLUMN_WEIGHT = 4.0


@dataclass(frozen=True)
class HeightTargets:
    """The targets of one image.

    ``probabilities``: soft targets ``(1 + sublattices·max_height, rows, cols)`` summing to 1 per pixel
    (class 0 background, class ``1 + s·K + h − 1`` a column of h atoms on sublattice s);
    ``weight``: per pixel ``(rows, cols)``;
    ``column_index``: ``(rows, cols)``, the column each pixel belongs to, -1 for background.
    """

    probabilities: np.ndarray
    weight: np.ndarray
    column_index: np.ndarray


def height_targets(xy_A, heights, shape: tuple[int, int], pixel_size_A: float, *, max_height: int,
                   radius_A: float = COLUMN_RADIUS_A, column_weight: float = COLUMN_WEIGHT, sublattice=None,
                   sublattices: int = 1) -> HeightTargets:
    """Soft height-class targets and weights of an image of ``shape`` from its columns.

    Parameters
    ----------
    xy_A : (n, 2) array
        Column positions ``(x, y)``, Å, origin at the top-left corner of the top-left pixel.
    heights : (n,) array of int
        Atoms in each column (0 or fewer: not a column, left out).
    shape : (rows, cols)
        The image's shape, px.
    pixel_size_A : float
        Pixel size, Å.
    max_height : int
        Number of height classes; taller columns take the last one.
    radius_A : float
        A column's disc, Å.
    column_weight : float
        Extra weight at a column's centre (see the module docstring).
    sublattice : (n,) array of int, optional
        Each column's sublattice, 0 … ``sublattices`` − 1 (default all 0).
    sublattices : int
        Number of sublattices.
    """
    if not pixel_size_A > 0 or not radius_A > 0:
        raise NanofindInputError(f"pixel size and radius must be > 0 Å, got {pixel_size_A} and {radius_A}")
    if int(max_height) < 1:
        raise NanofindInputError(f"max_height must be >= 1, got {max_height}")
    rows, cols = (int(v) for v in shape)
    if rows < 1 or cols < 1 or rows * cols > 64_000_000:
        raise NanofindInputError(f"image shape must be positive and at most 64 Mpx, got {shape}")
    xy = np.asarray(xy_A, dtype=np.float64).reshape(-1, 2)
    height = np.asarray(heights).reshape(-1)
    if len(height) != len(xy):
        raise NanofindInputError(f"one height per column: {len(xy)} positions and {len(height)} heights")
    lattice = np.zeros(len(height), np.int64) if sublattice is None else np.asarray(sublattice).reshape(-1)
    if len(lattice) != len(height):
        raise NanofindInputError(f"one sublattice per column: {len(height)} columns and {len(lattice)} sublattices")
    if int(sublattices) < 1 or (len(lattice) and (lattice.min() < 0 or lattice.max() >= sublattices)):
        raise NanofindInputError(f"sublattices must lie in 0…{int(sublattices) - 1}")
    real = height > 0
    xy, height, lattice = xy[real], height[real].astype(np.int64), lattice[real].astype(np.int64)
    classes = int(sublattices) * int(max_height) + 1
    probabilities = np.zeros((classes, rows, cols), dtype=np.float32)
    probabilities[0] = 1.0
    weight = np.ones((rows, cols), dtype=np.float32)
    column_index = np.full((rows, cols), -1, dtype=np.int64)
    if not len(xy):
        return HeightTargets(probabilities, weight, column_index)
    from scipy.spatial import cKDTree

    yy, xx = np.indices((rows, cols))
    centres = np.column_stack([(xx.ravel() + 0.5) * pixel_size_A, (yy.ravel() + 0.5) * pixel_size_A])
    distance, nearest = cKDTree(xy).query(centres, distance_upper_bound=radius_A)
    inside = np.isfinite(distance)
    pixel = np.flatnonzero(inside)
    column_probability = np.exp(-(distance[inside] ** 2) / (2 * (radius_A / 2) ** 2)).astype(np.float32)
    owner = nearest[inside]
    target_class = lattice[owner] * int(max_height) + np.minimum(height[owner], max_height)
    flat = probabilities.reshape(classes, -1)
    flat[0, pixel] = 1.0 - column_probability
    flat[target_class, pixel] += column_probability
    weight.reshape(-1)[pixel] += column_weight * column_probability
    column_index.reshape(-1)[pixel] = np.flatnonzero(real)[nearest[inside]]
    return HeightTargets(probabilities, weight, column_index)


def weighted_cross_entropy(log_probabilities, targets, weight):
    """Seed 001's loss: cross-entropy of soft targets, weighted per pixel and averaged by the weights.

    ``log_probabilities`` and ``targets``: ``(N, C, H, W)`` torch tensors (log-softmax of the
    network's output, and :class:`HeightTargets` probabilities); ``weight``: ``(N, H, W)``.
    """
    per_pixel = -(targets * log_probabilities).sum(dim=1)
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-12)
