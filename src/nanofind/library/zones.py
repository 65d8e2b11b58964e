"""Zone axes of a crystal and its projection along one: the projected cell and its atomic columns.

Conventions: a zone [u v w] is the lattice direction u·a + v·b + w·c of the conventional cell; the
beam runs along it. Hexagonal cells are also written in four indices [U V T W] with U = (2u − v)/3,
V = (2v − u)/3, T = −(u + v)/3, W = w, scaled to the smallest integers. The projected frame has x
along the shortest projected lattice vector and y = z × x with z along the zone, so that a
projection is seen as from the electron source looking down the beam; rows of an image are y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from itertools import product

import numpy as np
from ase import Atoms

#: Atoms whose projections fall closer than this are one column, Å.
COLUMN_TOLERANCE_A = 0.05


def _gcd(*values: int) -> int:
    return reduce(math.gcd, (abs(int(v)) for v in values))


def point_group_rotations(spacegroup: int, setting: int = 1) -> np.ndarray:
    """The (n, 3, 3) integer rotation parts of a space group, acting on fractional coordinates."""
    from ase.spacegroup import Spacegroup

    return np.asarray(Spacegroup(int(spacegroup), setting).rotations, dtype=np.int64)


def distinct_zones(max_index: int, rotations: np.ndarray) -> list[tuple[int, int, int]]:
    """Zone axes [u v w] with |u|, |v|, |w| ≤ ``max_index``, one per class of equivalent directions.

    Directions are equivalent when a rotation of the point group maps one onto the other or onto its
    opposite (the opposite direction shows the mirror image, which matching also tries). Each class is
    represented by the member whose largest index is smallest, then the lexicographically largest;
    the list is sorted by the length of the index vector, then by that member.
    """
    if max_index < 1:
        raise ValueError(f"max_index must be >= 1, got {max_index}")
    seen: set[tuple[int, int, int]] = set()
    zones = []
    for uvw in product(range(-max_index, max_index + 1), repeat=3):
        if uvw == (0, 0, 0) or _gcd(*uvw) != 1 or uvw in seen:
            continue
        images = {tuple(int(x) for x in s * (r @ np.asarray(uvw))) for r in rotations for s in (1, -1)}
        seen |= images
        # the member with the smallest indices, then the lexicographically largest
        zones.append(min(images, key=lambda z: (max(abs(x) for x in z), tuple(-x for x in z))))
    return sorted(zones, key=lambda z: (sum(x * x for x in z), tuple(-x for x in z)))


def four_index(uvw: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """[u v w] of hexagonal axes as the smallest integer [U V T W]."""
    u, v, w = uvw
    big = (2 * u - v, 2 * v - u, -(u + v), 3 * w)
    g = _gcd(*big)
    return tuple(x // g for x in big)


def zone_label(uvw: tuple[int, int, int], hexagonal: bool) -> str:
    """The zone as written in tables: ``"[1 1 0]"``, or ``"[2 -1 -1 0]"`` for hexagonal axes."""
    return "[" + " ".join(str(x) for x in (four_index(uvw) if hexagonal else uvw)) + "]"


def parse_zone(text: str) -> tuple[int, ...]:
    """Indices of a zone written ``"[1 1 0]"``, ``"110"``, ``"1,1,0"`` or four-index ``"[2 -1 -1 0]"``."""
    body = text.strip().strip("[]<>").replace(",", " ")
    parts = body.split()
    if len(parts) == 1 and parts[0].isdigit():
        parts = list(parts[0])
    return tuple(int(p) for p in parts)


def three_index(uvtw: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """[U V T W] as the smallest integer [u v w] of hexagonal axes."""
    big_u, big_v, _, big_w = uvtw
    uvw = (2 * big_u + big_v, 2 * big_v + big_u, big_w)
    g = _gcd(*uvw)
    return tuple(x // g for x in uvw)


@dataclass(frozen=True)
class Projection:
    """A crystal projected along a zone axis: one 2D cell of atomic columns.

    Attributes
    ----------
    cell_A : ndarray (2, 2)
        Rows are the projected cell vectors (x, y), Å; the first lies along x.
    positions_A : ndarray (n, 2)
        Column positions (x, y) inside the cell, Å.
    numbers : ndarray (n,)
        Atomic number of the column's heaviest atom.
    atoms_per_A : ndarray (n,)
        Atoms per Å of thickness along the beam.
    z_weight_per_A : ndarray (n,)
        Σ Z^``exponent`` of the column's atoms per Å of thickness (the convolution model's intensity).
    repeat_A : float
        Length of the zone's lattice vector u·a + v·b + w·c of the conventional cell, Å (a multiple of
        the crystal's shortest period along the zone when the cell is centred).
    exponent : float
        The Z exponent of ``z_weight_per_A``.
    """

    cell_A: np.ndarray
    positions_A: np.ndarray
    numbers: np.ndarray
    atoms_per_A: np.ndarray
    z_weight_per_A: np.ndarray
    repeat_A: float
    exponent: float

    @property
    def min_column_distance_A(self) -> float:
        """Shortest distance between two distinct columns (periodic images included), Å."""
        tiled = tile_positions(self.cell_A, self.positions_A, 1)
        d = np.linalg.norm(self.positions_A[:, None, :] - tiled[None, :, :], axis=2)
        d = d[d > COLUMN_TOLERANCE_A]
        return float(d.min()) if d.size else float(min(np.linalg.norm(self.cell_A, axis=1)))


def tile_positions(cell_A: np.ndarray, positions_A: np.ndarray, reach: int) -> np.ndarray:
    """Column positions of ``(2·reach + 1)²`` cells around the origin cell, (n·cells, 2) Å."""
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    shifts = i.reshape(-1, 1) * cell_A[0] + j.reshape(-1, 1) * cell_A[1]
    return (positions_A[None, :, :] + shifts[:, None, :]).reshape(-1, 2)


def _reduced_basis(vectors: np.ndarray, area: float) -> np.ndarray:
    """Two shortest independent vectors of the 2D lattice generated by ``vectors``, with cell area ``area``."""
    for reach in (3, 6, 12):
        coefficients = np.array(list(product(range(-reach, reach + 1), repeat=len(vectors))))
        points = coefficients @ vectors
        length = np.linalg.norm(points, axis=1)
        points, length = points[length > 1e-6], length[length > 1e-6]
        order = np.argsort(length, kind="stable")
        first = points[order[0]]
        for k in order[1:]:
            cross = first[0] * points[k, 1] - first[1] * points[k, 0]
            if abs(cross) > 1e-6 * length[k] * length[order[0]]:
                if abs(abs(cross) - area) < 1e-4 * area:
                    return np.array([first, points[k]])
                break
    raise ValueError("no reduced basis found for the projected lattice")


def _frame(atoms: Atoms, uvw: tuple[int, int, int]):
    """The projected frame of a zone: unit vectors (ex, ey, ez) in Å space, the reduced 2D basis, the repeat."""
    cell = np.asarray(atoms.cell)
    zone = np.asarray(uvw, dtype=np.float64) @ cell
    repeat = float(np.linalg.norm(zone))
    ez = zone / repeat
    # the projected lattice is generated by the projected cell vectors; its cell has area V / |t|
    flat = cell - np.outer(cell @ ez, ez)
    helper = flat[np.argmax(np.linalg.norm(flat, axis=1))]
    ex = helper / np.linalg.norm(helper)
    ey = np.cross(ez, ex)
    basis = _reduced_basis(np.column_stack([flat @ ex, flat @ ey]), abs(np.linalg.det(cell)) / repeat)
    # x along the shortest vector, y = z × x; the second vector with positive y (a right-handed cell)
    angle = math.atan2(basis[0, 1], basis[0, 0])
    ex, ey = math.cos(angle) * ex + math.sin(angle) * ey, -math.sin(angle) * ex + math.cos(angle) * ey
    turn = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    basis = basis @ turn.T
    basis[0, 1] = 0.0
    if basis[1, 1] < 0:
        basis[1] = -basis[1]
    return ex, ey, ez, basis, repeat


def project(atoms: Atoms, uvw: tuple[int, int, int], *, exponent: float = 1.7,
            merge_distance_A: float = COLUMN_TOLERANCE_A) -> Projection:
    """Project a periodic crystal along the lattice direction ``uvw``.

    Parameters
    ----------
    atoms : ase.Atoms
        Conventional cell, periodic.
    uvw : (int, int, int)
        Zone axis in the cell's indices, coprime.
    exponent : float
        Exponent n of the Z^n column weights (HAADF: about 1.7).
    merge_distance_A : float
        Atoms projected closer than this are one column (at their Z^n-weighted centre), Å: columns a
        few tenths of an ångström apart are one blurred column in any image.
    """
    ex, ey, _, basis, repeat = _frame(atoms, uvw)
    xy = np.column_stack([atoms.positions @ ex, atoms.positions @ ey])
    fractional = np.linalg.solve(basis.T, xy.T).T % 1.0
    positions, numbers, counts, weights = _columns(fractional, basis, atoms.numbers, exponent,
                                                   max(merge_distance_A, COLUMN_TOLERANCE_A))
    return Projection(basis, positions, numbers, counts / repeat, weights / repeat, repeat, float(exponent))


def oriented_slab(atoms: Atoms, uvw: tuple[int, int, int], size_A: float, thickness_A: float, *,
                  vacuum_A: float = 2.0) -> Atoms:
    """A square slab of the crystal with the zone along z, in an orthogonal cell (for multislice).

    The slab fills ``size_A`` × ``size_A`` laterally (its edges are cut, not periodic: simulate a
    larger field than needed and keep the middle) and ``thickness_A`` along the beam, with
    ``vacuum_A`` above and below. x and y are the projection's frame, so the slab's projection is
    :func:`project`'s pattern placed with its cell origin at the slab's centre.
    """
    ex, ey, ez, _, _ = _frame(atoms, uvw)
    cell = np.asarray(atoms.cell)
    rotation = np.array([ex, ey, ez])
    half = np.array([size_A / 2, size_A / 2, thickness_A / 2])
    # lattice translations whose cells can reach the box (a sphere around it, in cell indices)
    radius = float(np.linalg.norm(half)) + float(np.linalg.norm(cell.sum(axis=0)))
    reach = np.ceil(radius * np.linalg.norm(np.linalg.inv(cell), axis=0)).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    points = (grid @ cell)[:, None, :] + atoms.positions[None, :, :]
    local = points.reshape(-1, 3) @ rotation.T
    numbers = np.tile(atoms.numbers, len(grid))
    inside = np.all(np.abs(local) <= half, axis=1)
    local = local[inside] + half + np.array([0, 0, vacuum_A])
    return Atoms(numbers=numbers[inside], positions=local, cell=[size_A, size_A, thickness_A + 2 * vacuum_A],
                 pbc=True)


def _columns(fractional: np.ndarray, basis: np.ndarray, numbers: np.ndarray, exponent: float, tolerance_A: float):
    """Group atoms whose projections lie within ``tolerance_A`` of a column's first atom (periodically)."""
    anchors: list[np.ndarray] = []
    members: list[list[int]] = []
    offsets: list[list[np.ndarray]] = []
    for k, f in enumerate(fractional):
        for c, anchor in enumerate(anchors):
            delta = f - anchor
            delta -= np.round(delta)
            if np.linalg.norm(delta @ basis) < tolerance_A:
                members[c].append(k)
                offsets[c].append(delta)
                break
        else:
            anchors.append(f.copy())
            members.append([k])
            offsets.append([np.zeros(2)])
    weight_of = numbers.astype(np.float64) ** exponent
    xy, z, counts, weights = [], [], [], []
    for anchor, m, d in zip(anchors, members, offsets, strict=True):
        w = weight_of[m]
        centre = (anchor + np.average(np.array(d), axis=0, weights=w)) % 1.0
        xy.append(centre @ basis)
        z.append(int(max(numbers[m])))
        counts.append(float(len(m)))
        weights.append(float(w.sum()))
    return np.array(xy), np.array(z), np.array(counts), np.array(weights)


def zone_axes(prototype, max_index: int, *, min_column_distance_A: float = 0.0, exponent: float = 1.7,
              merge_distance_A: float = COLUMN_TOLERANCE_A):
    """The distinct zone axes of a prototype up to ``max_index`` with their projections.

    Zones whose distinct columns (after merging those within ``merge_distance_A``) come closer than
    ``min_column_distance_A`` (unresolvable projections) are left out. Returns a list of
    ``(uvw, Projection)``.
    """
    rotations = point_group_rotations(prototype.spacegroup)
    out = []
    for uvw in distinct_zones(max_index, rotations):
        projection = project(prototype.atoms, uvw, exponent=exponent, merge_distance_A=merge_distance_A)
        if projection.min_column_distance_A >= min_column_distance_A:
            out.append((uvw, projection))
    return out
