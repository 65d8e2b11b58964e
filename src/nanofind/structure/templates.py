"""Ideal coordination polyhedra for polyhedral template matching (seed 004, Eq. 2.1).

Each template holds the neighbour vectors of an ideal site, in units of the nearest-neighbour
distance, and the few ordered vertex pairs needed to fit it: the proper rotations that map the
polyhedron onto itself make most pairs equivalent, so only one pair per symmetry orbit is tried.

Templates
---------
``fcc``
    Cuboctahedron, the 12 neighbours ½⟨110⟩ of face-centred cubic.
``hcp``
    Anticuboctahedron (triangular orthobicupola) of ideal hexagonal close packing; the
    template's z axis is the c axis, i.e. the normal of the close-packed stacking planes.
``icosahedral``
    Icosahedron: the centre of a Mackay icosahedron.
``fivefold``
    Bicapped pentagonal prism: a site on the five-fold axis of a decahedron (or on one of the six
    axes of an icosahedron), two neighbours along the axis (template z) and two eclipsed rings of
    five on the twin planes.
``bcc``
    The 8 + 6 neighbours of body-centred cubic (second shell at 2/√3 of the first).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np

#: Two neighbours of a site touch when closer than this, in nearest-neighbour distances: in close
#: packing touching neighbours are 1 apart and the next ones √2.
BOND_NN = 1.2
#: Two ordered vertex pairs count as the same fitting frame when their angles agree to this, degrees.
_PAIR_ANGLE_TOLERANCE_DEG = 5.0


@dataclass(frozen=True)
class Template:
    """One ideal polyhedron.

    Attributes
    ----------
    name : str
        Structure name.
    vertices : ndarray of shape (n, 3)
        Neighbour vectors in units of the nearest-neighbour distance.
    pair_angle_deg : float
        Angle between the two neighbours that define a fitting frame, degrees.
    frames : ndarray of shape (c, 2), int
        One ordered vertex pair (first, second) per symmetry orbit of pairs at ``pair_angle_deg``.
    triangles : ndarray of shape (t, 3), int
        One right-handed ordered triangle of touching vertices (a, b, c: each pair closer than
        :data:`BOND_NN`, det[a, b, c] > 0) per symmetry orbit; empty when the template has none.
    """

    name: str
    vertices: np.ndarray
    pair_angle_deg: float
    frames: np.ndarray
    triangles: np.ndarray

    @property
    def size(self) -> int:
        """Number of neighbours the template fits."""
        return len(self.vertices)

    @property
    def mean_length(self) -> float:
        """Mean vertex distance, in nearest-neighbour units (1 except for bcc)."""
        return float(np.linalg.norm(self.vertices, axis=1).mean())


def frame_rotation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Orthonormal frames, as rotation matrices with columns (e1, e2, e3), from pairs of vectors.

    Parameters
    ----------
    first, second : ndarray of shape (..., 3)
        e1 points along ``first``; e2 is ``second`` made orthogonal to it.

    Returns
    -------
    ndarray of shape (..., 3, 3)
    """
    e1 = first / np.linalg.norm(first, axis=-1, keepdims=True)
    e2 = second - np.sum(second * e1, axis=-1, keepdims=True) * e1
    e2 = e2 / np.maximum(np.linalg.norm(e2, axis=-1, keepdims=True), 1e-12)
    e3 = np.cross(e1, e2)
    return np.stack([e1, e2, e3], axis=-1)


def _pairs_at(vertices: np.ndarray, angle_deg: float) -> list[tuple[int, int]]:
    unit = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    cos = np.clip(unit @ unit.T, -1, 1)
    angles = np.degrees(np.arccos(cos))
    return [(a, b) for a, b in itertools.permutations(range(len(vertices)), 2)
            if abs(angles[a, b] - angle_deg) < _PAIR_ANGLE_TOLERANCE_DEG]


def _symmetry_rotations(vertices: np.ndarray, pairs: list[tuple[int, int]]) -> list[np.ndarray]:
    """Proper rotations that map the vertex set onto itself (found among pair-to-pair frames)."""
    a0, b0 = pairs[0]
    f0 = frame_rotation(vertices[a0], vertices[b0])
    rotations = []
    for a, b in pairs:
        if abs(np.linalg.norm(vertices[a]) - np.linalg.norm(vertices[a0])) > 1e-6:
            continue
        rot = frame_rotation(vertices[a], vertices[b]) @ f0.T
        moved = vertices @ rot.T
        if np.abs(moved[:, None, :] - vertices[None, :, :]).sum(-1).min(axis=1).max() < 1e-6:
            rotations.append(rot)
    return rotations


def _orbit_representatives(vertices: np.ndarray, angle_deg: float) -> np.ndarray:
    pairs = _pairs_at(vertices, angle_deg)
    rotations = _symmetry_rotations(vertices, pairs)
    index = {tuple(np.round(v, 6) + 0.0): i for i, v in enumerate(vertices)}

    def image(rot, i):
        return index[tuple(np.round(rot @ vertices[i], 6) + 0.0)]

    seen: set[tuple[int, int]] = set()
    reps = []
    for a, b in pairs:
        if (a, b) in seen:
            continue
        reps.append((a, b))
        seen.update((image(r, a), image(r, b)) for r in rotations)
    return np.array(reps, dtype=int)


def _oriented_triangles(vertices: np.ndarray) -> list[tuple[int, int, int]]:
    touching = np.linalg.norm(vertices[:, None] - vertices[None], axis=-1) < BOND_NN
    np.fill_diagonal(touching, False)
    return [(a, b, c) for a, b, c in itertools.permutations(range(len(vertices)), 3)
            if touching[a, b] and touching[b, c] and touching[a, c]
            and np.linalg.det(vertices[[a, b, c]]) > 0]


def _triangle_representatives(vertices: np.ndarray, angle_deg: float) -> np.ndarray:
    triangles = _oriented_triangles(vertices)
    if not triangles:
        return np.zeros((0, 3), dtype=int)
    rotations = _symmetry_rotations(vertices, _pairs_at(vertices, angle_deg))
    index = {tuple(np.round(v, 6) + 0.0): i for i, v in enumerate(vertices)}
    seen: set[tuple[int, ...]] = set()
    reps = []
    for tri in triangles:
        if tri in seen:
            continue
        reps.append(tri)
        seen.update(tuple(index[tuple(np.round(r @ vertices[i], 6) + 0.0)] for i in tri) for r in rotations)
    return np.array(reps, dtype=int)


def _fcc() -> np.ndarray:
    v = [p for p in itertools.product((-1, 0, 1), repeat=3) if sum(abs(x) for x in p) == 2]
    return np.array(v, dtype=float) / np.sqrt(2)


def _hcp() -> np.ndarray:
    basal = [(np.cos(t), np.sin(t), 0.0) for t in np.radians(np.arange(0, 360, 60))]
    r, h = 1 / np.sqrt(3), np.sqrt(2 / 3)
    rings = [(r * np.cos(t), r * np.sin(t), z) for z in (h, -h) for t in np.radians([30, 150, 270])]
    return np.array(basal + rings)


def _icosahedral() -> np.ndarray:
    phi = (1 + np.sqrt(5)) / 2
    v = []
    for s1, s2 in itertools.product((-1, 1), repeat=2):
        v += [(0, s1, s2 * phi), (s1, s2 * phi, 0), (s2 * phi, 0, s1)]
    v = np.array(v, dtype=float)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fivefold() -> np.ndarray:
    r = np.sqrt(3) / 2
    rings = [(r * np.cos(t), r * np.sin(t), z) for z in (0.5, -0.5) for t in np.radians(np.arange(0, 360, 72))]
    return np.array([(0.0, 0.0, 1.0), (0.0, 0.0, -1.0)] + rings)


def _bcc() -> np.ndarray:
    first = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=float) / np.sqrt(3)
    second = np.vstack([np.eye(3), -np.eye(3)]) * 2 / np.sqrt(3)
    return np.vstack([first, second])


_BUILDERS = {
    "fcc": (_fcc, 60.0),
    "hcp": (_hcp, 60.0),
    "icosahedral": (_icosahedral, float(np.degrees(np.arccos(1 / np.sqrt(5))))),
    "fivefold": (_fivefold, 60.0),
    "bcc": (_bcc, float(np.degrees(np.arccos(1 / 3)))),
}

#: Template names in the order they are fitted and reported.
TEMPLATE_NAMES = tuple(_BUILDERS)


@cache
def template(name: str) -> Template:
    """The :class:`Template` called ``name`` (one of :data:`TEMPLATE_NAMES`)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown template {name!r}; expected one of {', '.join(TEMPLATE_NAMES)}")
    build, angle = _BUILDERS[name]
    vertices = build()
    return Template(name, vertices, angle, _orbit_representatives(vertices, angle),
                    _triangle_representatives(vertices, angle))


@cache
def hcp_within_fcc() -> tuple[np.ndarray, np.ndarray]:
    """The eight ways an hcp template shares nine vertices with the fcc template.

    An hcp site fitted with the fcc template matches its basal hexagon (a {111} plane of the
    cuboctahedron) and the triangle on one side; the triangle on the other side is turned by 60°.

    Returns
    -------
    rotations : ndarray of shape (8, 3, 3)
        Q with fcc_vertices ∋ Q @ hcp_vertex for nine hcp vertices (4 {111} planes × 2 sides).
    unmatched : ndarray of shape (8, 3), int
        The three fcc vertices (on the other side) that no hcp vertex lands on.
    """
    fcc, hcp = template("fcc").vertices, template("hcp").vertices
    rotations, unmatched = [], []
    reference = frame_rotation(np.array([1.0, 0, 0]), np.array([0, 0, 1.0]))
    for normal in np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]]) / np.sqrt(3):
        for side in (1.0, -1.0):
            in_plane = fcc[np.abs(fcc @ normal) < 1e-9]
            for u in in_plane:
                q = frame_rotation(u, side * normal) @ reference.T
                hit = np.abs((hcp @ q.T)[:, None, :] - fcc[None]).sum(-1) < 1e-6  # (hcp, fcc)
                if hit.any(axis=1).sum() == 9:
                    rotations.append(q)
                    unmatched.append(np.flatnonzero(~hit.any(axis=0)))
                    break
    return np.array(rotations), np.array(unmatched)
