"""Per-atom labels and their projection onto pixel grids (segmentation ground truth).

Label arrays stored on every scene's ``ase.Atoms`` (``atoms.arrays``):

``object_id`` (int)
    Index of the scene object the atom came from (0 is the first object added).
``grain_id`` (int)
    Scene-wide grain index; every twin domain or MTP segment is its own grain; -1 for
    amorphous atoms.
``is_particle`` (bool)
    True for atoms of crystalline particles, False for substrate.
``defect`` (int)
    Bit flags of :class:`DefectFlag`; 0 for a perfect-crystal environment.

Pixel grid convention: arrays are indexed ``[row, column]`` with rows along y. Pixel
``(r, c)`` has its centre at ``(origin_x + (c + 0.5) * pixel_size, origin_y + (r + 0.5) * pixel_size)``
in Å, so row 0 is at the smallest y. Projection is along the beam (z).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from ase import Atoms
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

LABEL_ARRAYS = ("object_id", "grain_id", "is_particle", "defect")


class DefectFlag(enum.IntFlag):
    """Bits of the per-atom ``defect`` label."""

    NONE = 0
    TWIN_BOUNDARY = 1  #: atom on a twin plane or a multiply-twinned segment boundary
    STACKING_FAULT = 2  #: atom in a layer next to a stacking fault
    VACANCY_NEIGHBOUR = 4  #: atom that lost a nearest neighbour to a vacancy
    SUBSTITUTION = 8  #: substitutional (alloying) atom


class LabelMaps(NamedTuple):
    """Projected ground truth on a pixel grid (all arrays have shape (ny, nx), rows are y)."""

    mask: np.ndarray  #: bool, particle footprint
    grain: np.ndarray  #: int, grain filling most of the column at the pixel, -1 outside the mask
    column_height: np.ndarray  #: int, particle atoms projecting within the column radius


def pixel_centers(shape: Sequence[int], pixel_size_A: float, origin_A: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """Centres (x, y) in Å of all pixels, shape (ny * nx, 2), row-major."""
    ny, nx = (int(v) for v in shape)
    ys = origin_A[1] + (np.arange(ny) + 0.5) * pixel_size_A
    xs = origin_A[0] + (np.arange(nx) + 0.5) * pixel_size_A
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.column_stack([xx.ravel(), yy.ravel()])


def project_labels(atoms: Atoms, shape: Sequence[int], pixel_size_A: float,
                   origin_A: Sequence[float] = (0.0, 0.0), *, atom_radius_A: float = 1.5,
                   column_radius_A: float = 0.6) -> LabelMaps:
    """Project particle labels onto a pixel grid.

    Parameters
    ----------
    atoms : ase.Atoms
        Scene with the label arrays (see module docstring).
    shape : (ny, nx)
        Grid size in pixels.
    pixel_size_A : float
        Pixel size, Å.
    origin_A : (float, float)
        Position (x, y) in Å of the grid's lower-left corner.
    atom_radius_A : float
        A pixel belongs to the particle mask when its centre lies within this distance of the
        projected position of any particle atom; holes enclosed by the particle are filled.
        The default 1.5 Å exceeds half the widest projected column spacing of the supported
        crystals on low-index axes, so particles come out solid.
    column_radius_A : float
        Radius for the column-height map: each pixel counts the particle atoms whose projected
        positions lie within this distance of its centre (all atoms of an on-axis column
        project to one point).

    Returns
    -------
    LabelMaps
    """
    if not pixel_size_A > 0:
        raise ValueError(f"pixel_size_A must be > 0, got {pixel_size_A}")
    ny, nx = (int(v) for v in shape)
    mask = np.zeros((ny, nx), dtype=bool)
    grain = np.full((ny, nx), -1, dtype=np.int32)
    height = np.zeros((ny, nx), dtype=np.int32)
    particle = np.asarray(atoms.arrays["is_particle"], dtype=bool)
    if not particle.any():
        return LabelMaps(mask, grain, height)
    xy = atoms.positions[particle, :2]
    grains = np.asarray(atoms.arrays["grain_id"])[particle]
    window = _window(xy, (ny, nx), pixel_size_A, origin_A, max(atom_radius_A, column_radius_A))
    if window is None:
        return LabelMaps(mask, grain, height)
    r0, r1, c0, c1, sub_origin = window
    centers = pixel_centers((r1 - r0, c1 - c0), pixel_size_A, sub_origin)
    tree = cKDTree(xy)
    sub_mask = _within(tree, centers, atom_radius_A).reshape(r1 - r0, c1 - c0)
    sub_grain = _majority_grain(xy, grains, sub_origin, sub_mask.shape, pixel_size_A, atom_radius_A)
    counts = tree.query_ball_point(centers, column_radius_A, return_length=True).reshape(sub_mask.shape)
    filled, sub_grain = _fill_holes(sub_mask, sub_grain, -1)
    mask[r0:r1, c0:c1] = filled
    grain[r0:r1, c0:c1] = sub_grain
    height[r0:r1, c0:c1] = counts
    return LabelMaps(mask, grain, height)


def project_instances(atoms: Atoms, shape: Sequence[int], pixel_size_A: float,
                      origin_A: Sequence[float] = (0.0, 0.0), *, atom_radius_A: float = 1.5) -> np.ndarray:
    """Particle instance map: at each pixel, ``object_id + 1`` of the particle there, 0 off particles.

    The footprint is exactly the mask of :func:`project_labels` with the same ``atom_radius_A``
    (Å). Where two particles' footprints overlap in projection, the pixel goes to the particle
    with more atoms around it (the same Gaussian-weighted count that picks the grain), and holes
    enclosed by a footprint take the id of the nearest particle pixel.

    Parameters
    ----------
    atoms : ase.Atoms
        Scene with the label arrays (``object_id``, ``is_particle``).
    shape : (ny, nx)
        Grid size in pixels.
    pixel_size_A : float
        Pixel size, Å.
    origin_A : (float, float)
        Position (x, y) in Å of the grid's lower-left corner.
    atom_radius_A : float
        Footprint radius around each projected particle atom, Å.

    Returns
    -------
    ndarray of int32, shape (ny, nx)
    """
    if not pixel_size_A > 0:
        raise ValueError(f"pixel_size_A must be > 0, got {pixel_size_A}")
    ny, nx = (int(v) for v in shape)
    instance = np.zeros((ny, nx), dtype=np.int32)
    particle = np.asarray(atoms.arrays["is_particle"], dtype=bool)
    if not particle.any():
        return instance
    xy = atoms.positions[particle, :2]
    ids = np.asarray(atoms.arrays["object_id"])[particle].astype(np.int64) + 1
    window = _window(xy, (ny, nx), pixel_size_A, origin_A, atom_radius_A)
    if window is None:
        return instance
    r0, r1, c0, c1, sub_origin = window
    centers = pixel_centers((r1 - r0, c1 - c0), pixel_size_A, sub_origin)
    sub_mask = _within(cKDTree(xy), centers, atom_radius_A).reshape(r1 - r0, c1 - c0)
    sub_ids = _majority_grain(xy, ids, sub_origin, sub_mask.shape, pixel_size_A, atom_radius_A)
    filled, sub_ids = _fill_holes(sub_mask, sub_ids, 0)
    instance[r0:r1, c0:c1] = np.where(filled, sub_ids, 0)
    return instance


def _window(xy: np.ndarray, shape, pixel_size_A: float, origin_A, reach_A: float):
    """Rows r0:r1, columns c0:c1 and lower-left corner (Å) of the pixels within ``reach_A`` of the atoms.

    Work is restricted to them; None when they miss the grid.
    """
    ny, nx = shape
    c0 = max(int(np.floor((xy[:, 0].min() - reach_A - origin_A[0]) / pixel_size_A)), 0)
    c1 = min(int(np.ceil((xy[:, 0].max() + reach_A - origin_A[0]) / pixel_size_A)) + 1, nx)
    r0 = max(int(np.floor((xy[:, 1].min() - reach_A - origin_A[1]) / pixel_size_A)), 0)
    r1 = min(int(np.ceil((xy[:, 1].max() + reach_A - origin_A[1]) / pixel_size_A)) + 1, ny)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1, (origin_A[0] + c0 * pixel_size_A, origin_A[1] + r0 * pixel_size_A)


def _within(tree: cKDTree, centers: np.ndarray, radius_A: float) -> np.ndarray:
    """Whether each pixel centre lies within ``radius_A`` of a projected atom."""
    return np.isfinite(tree.query(centers, distance_upper_bound=radius_A + 1e-9)[0])


def _fill_holes(hit: np.ndarray, labels: np.ndarray, outside: int) -> tuple[np.ndarray, np.ndarray]:
    """Footprint with enclosed holes filled, and labels there taken from the nearest hit pixel."""
    from scipy.ndimage import binary_fill_holes, distance_transform_edt  # not imported by `nanofind scene`

    labels = np.where(hit, labels, outside)
    filled = binary_fill_holes(hit)
    if np.any(filled & ~hit):
        _, (rr, cc) = distance_transform_edt(~hit, return_indices=True)
        labels = np.where(filled & ~hit, labels[rr, cc], labels)
    return filled, labels


def _majority_grain(xy: np.ndarray, grains: np.ndarray, origin_A, shape, pixel_size_A: float,
                    radius_A: float) -> np.ndarray:
    """Per pixel, the grain with the largest Gaussian-weighted count of projected atoms.

    Weights fall off with sigma = radius / 2 around each pixel, so where grains overlap in
    projection the one that fills more of the column wins and boundaries come out smooth.
    """
    from scipy.ndimage import gaussian_filter  # not imported by `nanofind scene`

    ids = np.unique(grains)
    rows = np.clip(np.floor((xy[:, 1] - origin_A[1]) / pixel_size_A).astype(int), 0, shape[0] - 1)
    cols = np.clip(np.floor((xy[:, 0] - origin_A[0]) / pixel_size_A).astype(int), 0, shape[1] - 1)
    best = np.zeros(shape, dtype=np.float32)
    result = np.full(shape, ids[0], dtype=np.int32)
    sigma = max(radius_A / 2 / pixel_size_A, 0.5)
    margin = int(np.ceil(3 * sigma)) + 1
    for g in ids:  # one grain at a time, inside its own bounding box
        sel = grains == g
        r0, r1 = max(rows[sel].min() - margin, 0), min(rows[sel].max() + margin + 1, shape[0])
        c0, c1 = max(cols[sel].min() - margin, 0), min(cols[sel].max() + margin + 1, shape[1])
        count = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
        np.add.at(count, (rows[sel] - r0, cols[sel] - c0), 1.0)
        weight = gaussian_filter(count, sigma, mode="constant", truncate=3.0)
        window = best[r0:r1, c0:c1]
        better = weight > window
        result[r0:r1, c0:c1][better] = g
        window[better] = weight[better]
    return result


class Columns(NamedTuple):
    """Atomic columns of the particles, projected along the beam."""

    xy_A: np.ndarray  #: (K, 2) mean projected position, Å
    height: np.ndarray  #: (K,) number of atoms in the column
    grain: np.ndarray  #: (K,) grain id of most of the column's atoms


def column_positions(atoms: Atoms, tolerance_A: float = 0.3) -> Columns:
    """Group particle atoms into columns along the beam.

    Atoms whose projected positions are closer than ``tolerance_A`` (transitively) form one
    column. Off-axis particles give many one-atom columns.
    """
    particle = np.asarray(atoms.arrays["is_particle"], dtype=bool)
    xy = atoms.positions[particle, :2]
    grains = np.asarray(atoms.arrays["grain_id"])[particle]
    if len(xy) == 0:
        return Columns(np.zeros((0, 2)), np.zeros(0, int), np.zeros(0, int))
    pairs = cKDTree(xy).query_pairs(tolerance_A, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xy), len(xy)))
    n_cols, label = connected_components(graph, directed=False)
    counts = np.bincount(label, minlength=n_cols)
    centers = np.column_stack([np.bincount(label, weights=xy[:, k], minlength=n_cols) for k in range(2)])
    centers /= counts[:, None]
    # majority grain per column
    gmin = int(grains.min())
    span = int(grains.max()) - gmin + 1
    key, cnt = np.unique(label.astype(np.int64) * span + (grains - gmin), return_counts=True)
    key_label, key_grain = key // span, key % span + gmin
    order = np.lexsort((-cnt, key_label))
    first = np.unique(key_label[order], return_index=True)[1]
    col_grain = key_grain[order][first]
    return Columns(centers, counts, col_grain)
