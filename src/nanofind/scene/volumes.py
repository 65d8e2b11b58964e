"""Volumes: the regions in which generated atoms are kept.

Every volume answers ``contains(points)`` for an (N, 3) array of positions in Å, has a
``bounding_box()`` and can be moved with ``transformed(rotation, translation)``, which
applies ``x -> rotation @ x + translation``. Volumes combine with ``&`` (intersection),
``|`` (union) and ``-`` (difference). Points on a surface count as inside (tolerance
:data:`SURFACE_TOLERANCE_A`), so complete facets of a crystal are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, HalfspaceIntersection

from nanofind.errors import NanofindInputError
from nanofind.scene.lattice import equivalent_plane_normals

SURFACE_TOLERANCE_A = 1e-6


class Volume:
    """Base class of all volumes."""

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of the points (N, 3), Å, that lie inside."""
        raise NotImplementedError(f"{type(self).__name__} must implement contains()")

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners, Å, of an axis-aligned box enclosing the volume."""
        raise NotImplementedError(f"{type(self).__name__} must implement bounding_box()")

    def transformed(self, rotation: np.ndarray | None = None, translation: Sequence[float] = (0, 0, 0)) -> Volume:
        """The volume moved by ``x -> rotation @ x + translation`` (Å)."""
        raise NotImplementedError(f"{type(self).__name__} must implement transformed()")

    def __and__(self, other: Volume) -> Intersection:
        return Intersection((self, other))

    def __or__(self, other: Volume) -> Union:
        return Union((self, other))

    def __sub__(self, other: Volume) -> Difference:
        return Difference(self, other)


def _rot(rotation: np.ndarray | None) -> np.ndarray:
    return np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)


@dataclass(frozen=True, eq=False)
class Sphere(Volume):
    """Ball of ``radius_A`` around ``center_A``."""

    center_A: np.ndarray
    radius_A: float

    def __post_init__(self):
        if not self.radius_A > 0:
            raise NanofindInputError(f"sphere radius must be > 0 Å, got {self.radius_A}", "radius_A")
        object.__setattr__(self, "center_A", np.asarray(self.center_A, dtype=float))

    def contains(self, points):
        d2 = np.sum((np.asarray(points) - self.center_A) ** 2, axis=1)
        return d2 <= (self.radius_A + SURFACE_TOLERANCE_A) ** 2

    def bounding_box(self):
        return self.center_A - self.radius_A, self.center_A + self.radius_A

    def transformed(self, rotation=None, translation=(0, 0, 0)):
        return Sphere(_rot(rotation) @ self.center_A + np.asarray(translation, float), self.radius_A)


@dataclass(frozen=True, eq=False)
class Cylinder(Volume):
    """Right circular cylinder of ``radius_A`` and ``length_A`` centred on ``center_A`` along ``axis``."""

    center_A: np.ndarray
    axis: np.ndarray
    radius_A: float
    length_A: float

    def __post_init__(self):
        if not (self.radius_A > 0 and self.length_A > 0):
            raise NanofindInputError(
                f"cylinder radius and length must be > 0 Å, got {self.radius_A}, {self.length_A}", "cylinder")
        axis = np.asarray(self.axis, dtype=float)
        object.__setattr__(self, "axis", axis / np.linalg.norm(axis))
        object.__setattr__(self, "center_A", np.asarray(self.center_A, dtype=float))

    def contains(self, points):
        rel = np.asarray(points) - self.center_A
        along = rel @ self.axis
        radial2 = np.sum(rel**2, axis=1) - along**2
        tol = SURFACE_TOLERANCE_A
        return (np.abs(along) <= self.length_A / 2 + tol) & (radial2 <= (self.radius_A + tol) ** 2)

    def bounding_box(self):
        half = np.abs(self.axis) * self.length_A / 2 + self.radius_A * np.sqrt(np.clip(1 - self.axis**2, 0, 1))
        return self.center_A - half, self.center_A + half

    def transformed(self, rotation=None, translation=(0, 0, 0)):
        r = _rot(rotation)
        return Cylinder(r @ self.center_A + np.asarray(translation, float), r @ self.axis,
                        self.radius_A, self.length_A)


@dataclass(frozen=True, eq=False)
class ConvexPolyhedron(Volume):
    """Intersection of half-spaces ``normals[i] · x <= offsets_A[i]``.

    Parameters
    ----------
    normals : ndarray of shape (n, 3)
        Outward facet normals (normalised on construction).
    offsets_A : ndarray of shape (n,)
        Signed distances of the facets from the origin, Å.
    """

    normals: np.ndarray
    offsets_A: np.ndarray

    def __post_init__(self):
        normals = np.atleast_2d(np.asarray(self.normals, dtype=float))
        lengths = np.linalg.norm(normals, axis=1)
        if np.any(lengths == 0):
            raise NanofindInputError("facet normals must be non-zero", "facets")
        object.__setattr__(self, "normals", normals / lengths[:, None])
        object.__setattr__(self, "offsets_A", np.asarray(self.offsets_A, dtype=float).reshape(-1))

    @classmethod
    def from_vertices(cls, vertices: np.ndarray) -> ConvexPolyhedron:
        """Convex hull of the points ``vertices`` (N, 3), Å."""
        hull = ConvexHull(np.asarray(vertices, dtype=float))
        return cls(hull.equations[:, :3], -hull.equations[:, 3])

    @classmethod
    def box(cls, lower_A: Sequence[float], upper_A: Sequence[float]) -> ConvexPolyhedron:
        """Axis-aligned box (also a slab when it spans the whole field laterally)."""
        lo, hi = np.asarray(lower_A, float), np.asarray(upper_A, float)
        if np.any(hi <= lo):
            raise NanofindInputError(f"box upper corner {hi.tolist()} must exceed lower {lo.tolist()}", "box")
        eye = np.eye(3)
        return cls(np.vstack([eye, -eye]), np.concatenate([hi, -lo]))

    def contains(self, points):
        return np.all(np.asarray(points) @ self.normals.T <= self.offsets_A + SURFACE_TOLERANCE_A, axis=1)

    def interior_point(self) -> np.ndarray:
        """Centre of the largest inscribed ball (Chebyshev centre), Å."""
        n = len(self.normals)
        res = linprog(c=[0, 0, 0, -1], A_ub=np.hstack([self.normals, np.ones((n, 1))]), b_ub=self.offsets_A,
                      bounds=[(None, None)] * 3 + [(0, None)], method="highs")
        if not res.success or res.x[3] <= 1e-9:
            raise NanofindInputError("the facets enclose no volume (check their distances and signs)", "facets")
        return res.x[:3]

    def vertices(self) -> np.ndarray:
        """Corner points, Å. Raises if the half-spaces do not enclose a bounded volume."""
        inner = self.interior_point()
        halfspaces = np.hstack([self.normals, -self.offsets_A[:, None]])
        try:
            pts = HalfspaceIntersection(halfspaces, inner).intersections
        except Exception:  # qhull errors for unbounded or degenerate sets
            raise NanofindInputError("the facets do not enclose a bounded volume", "facets") from None
        if not np.all(np.isfinite(pts)) or np.abs(pts).max() > 1e6:
            raise NanofindInputError("the facets do not enclose a bounded volume", "facets")
        return pts

    def volume_A3(self) -> float:
        """Enclosed volume in Å³."""
        return float(ConvexHull(self.vertices()).volume)

    def bounding_box(self):
        v = self.vertices()
        return v.min(axis=0), v.max(axis=0)

    def transformed(self, rotation=None, translation=(0, 0, 0)):
        normals = self.normals @ _rot(rotation).T
        return ConvexPolyhedron(normals, self.offsets_A + normals @ np.asarray(translation, float))

    def scaled(self, factor: float) -> ConvexPolyhedron:
        """The polyhedron scaled by ``factor`` about the origin."""
        return ConvexPolyhedron(self.normals, self.offsets_A * factor)


def equivalent_diameter_A(volume_A3: float) -> float:
    """Diameter in Å of the sphere with the given volume in Å³."""
    return float((6 * volume_A3 / np.pi) ** (1 / 3))


def faceted_polyhedron(cell: np.ndarray, facets: Mapping[tuple, float], rotation: np.ndarray | None = None,
                       ) -> ConvexPolyhedron:
    """Convex polyhedron bounded by crystal facet families at given distances from the origin.

    Parameters
    ----------
    cell : ndarray of shape (3, 3)
        Lattice vectors as rows, Å, of any lattice (hexagonal included).
    facets : mapping
        ``{(h, k, l): distance_A}``; four-index ``(h, k, i, l)`` keys are accepted. Each family
        is expanded by the point operations of the lattice, so ``{(1, 1, 1): 20}`` gives the
        eight {111} facets of a cubic crystal 20 Å from the centre.
    rotation : ndarray of shape (3, 3), optional
        Crystal orientation (the rotation applied to the crystal), so the facets turn with it.

    Returns
    -------
    ConvexPolyhedron
    """
    normals, offsets = [], []
    for hkl, distance in facets.items():
        if not distance > 0:
            raise NanofindInputError(f"facet distance for {tuple(hkl)} must be > 0 Å, got {distance}", "facets")
        fam = equivalent_plane_normals(cell, hkl)
        normals.append(fam)
        offsets.append(np.full(len(fam), float(distance)))
    poly = ConvexPolyhedron(np.vstack(normals), np.concatenate(offsets))
    poly.vertices()  # validates boundedness early, with a clear message
    return poly.transformed(rotation) if rotation is not None else poly


def wulff_polyhedron(cell: np.ndarray, surface_energies: Mapping[tuple, float], diameter_A: float,
                     rotation: np.ndarray | None = None) -> ConvexPolyhedron:
    """Wulff shape: facet distances proportional to surface energies, scaled to a size.

    Parameters
    ----------
    cell : ndarray of shape (3, 3)
        Lattice vectors as rows, Å.
    surface_energies : mapping
        ``{(h, k, l): gamma}`` in any consistent unit (J/m² is usual); only ratios matter.
    diameter_A : float
        Volume-equivalent sphere diameter of the result, Å.
    rotation : ndarray of shape (3, 3), optional
        Crystal orientation.
    """
    if not diameter_A > 0:
        raise NanofindInputError(f"diameter must be > 0 Å, got {diameter_A}", "diameter_A")
    unit = faceted_polyhedron(cell, surface_energies)
    scale = diameter_A / equivalent_diameter_A(unit.volume_A3())
    poly = unit.scaled(scale)
    return poly.transformed(rotation) if rotation is not None else poly


@dataclass(frozen=True, eq=False)
class Intersection(Volume):
    """Points inside every one of ``parts``."""

    parts: tuple[Volume, ...]

    def contains(self, points):
        mask = self.parts[0].contains(points)
        for part in self.parts[1:]:
            mask &= part.contains(points)
        return mask

    def bounding_box(self):
        boxes = [p.bounding_box() for p in self.parts]
        return np.max([b[0] for b in boxes], axis=0), np.min([b[1] for b in boxes], axis=0)

    def transformed(self, rotation=None, translation=(0, 0, 0)):
        return Intersection(tuple(p.transformed(rotation, translation) for p in self.parts))


@dataclass(frozen=True, eq=False)
class Union(Volume):
    """Points inside any one of ``parts``."""

    parts: tuple[Volume, ...]

    def contains(self, points):
        mask = self.parts[0].contains(points)
        for part in self.parts[1:]:
            mask |= part.contains(points)
        return mask

    def bounding_box(self):
        boxes = [p.bounding_box() for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def transformed(self, rotation=None, translation=(0, 0, 0)):
        return Union(tuple(p.transformed(rotation, translation) for p in self.parts))


@dataclass(frozen=True, eq=False)
class Difference(Volume):
    """Points inside ``base`` and outside ``removed``."""

    base: Volume
    removed: Volume

    def contains(self, points):
        return self.base.contains(points) & ~self.removed.contains(points)

    def bounding_box(self):
        return self.base.bounding_box()

    def transformed(self, rotation=None, translation=(0, 0, 0)):
        return Difference(self.base.transformed(rotation, translation), self.removed.transformed(rotation, translation))
