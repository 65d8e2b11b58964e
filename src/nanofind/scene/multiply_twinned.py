"""Multiply twinned particles: decahedra (5 segments) and icosahedra (20 segments).

Both are built directly from the fcc lattice written in a nearest-neighbour basis, which
for fcc is primitive: every site is ``i a1 + j a2 + k a3`` with integer coefficients and
``a1, a2, a3`` three nearest-neighbour vectors 60° apart.

**Decahedron.** Five fcc segments share a <110> axis (local z, the five-fold axis). Each
segment is the sector between two {111} twin planes that contain the axis; in a perfect
crystal that sector spans 70.53°, so five leave a 7.35° gap. Two ways to close it:

- ``gap="strain"`` (default): every segment is stretched azimuthally to 72°, with its
  in-plane spacing reduced so the volume per atom stays that of the bulk. All five twin
  boundaries are coherent and the particle has exact five-fold symmetry.
- ``gap="closed"``: segments keep the bulk lattice (70.53°); the last one is widened to
  close the gap, so the misfit sits in one incoherent boundary, where atoms of the last
  segment closer than 0.8 nearest-neighbour distances to the first are removed.

**Icosahedron.** Twenty fcc tetrahedra share the centre; the tetrahedron of face
``(A, B, C)`` of a regular icosahedron holds the sites ``i a + j b + k c`` (i, j, k ≥ 0)
with ``a, b, c`` along the vertex directions. The radial spacing is 5% shorter than the
tangential one (the well-known icosahedral strain); the scale keeps the bulk volume per
atom. Complete particles reproduce the magic numbers 13, 55, 147, 309, ...

Segments are grains ``0..4`` or ``0..19``; atoms on segment boundaries carry
``DefectFlag.TWIN_BOUNDARY``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from scipy.spatial import ConvexHull, cKDTree

from nanofind.errors import NanofindInputError
from nanofind.scene.crystal import GeneratedAtoms, concatenate
from nanofind.scene.labels import DefectFlag
from nanofind.scene.lattice import atomic_volume, nearest_neighbour_distance
from nanofind.scene.orientation import rotation_to_z
from nanofind.scene.volumes import ConvexPolyhedron, Volume

TWIN_ANGLE_DEG = float(np.degrees(np.arccos(1 / 3)))  # 70.53°, dihedral angle of the tetrahedron
_GOLDEN = (1 + 5**0.5) / 2


def fcc_metal_parameters(unit_cell: Atoms) -> tuple[str, float]:
    """Element and nearest-neighbour distance (Å) of a one-element fcc unit cell."""
    symbols = set(unit_cell.get_chemical_symbols())
    d = nearest_neighbour_distance(unit_cell)
    if len(symbols) != 1 or abs(atomic_volume(unit_cell) / (d**3 / np.sqrt(2)) - 1) > 0.01:
        raise NanofindInputError(
            f"decahedra and icosahedra need a one-element fcc metal, got {unit_cell.get_chemical_formula()}",
            "material")
    return symbols.pop(), d


def _transform_box(volume: Volume, rotation: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding sphere (centre in the local frame, radius) of a lab-frame volume."""
    lo, hi = volume.bounding_box()
    return rotation.T @ ((lo + hi) / 2), float(np.linalg.norm(hi - lo) / 2) + 1e-6


@dataclass(frozen=True)
class DecahedronGenerator:
    """Five-segment multiply twinned fcc lattice with the five-fold axis along local z.

    Parameters
    ----------
    element : str
        Chemical symbol.
    nn_distance_A : float
        Bulk nearest-neighbour distance, Å (``a / sqrt(2)``).
    gap : {"strain", "closed"}
        How the 7.35° wedge gap is closed (see module docstring).
    axial_offset_A : float
        Shift of the lattice along the five-fold axis, Å; 0 puts a site at the origin.
    rotation : ndarray of shape (3, 3)
        Orientation of the local frame in the lab.
    """

    element: str
    nn_distance_A: float
    gap: Literal["strain", "closed"] = "strain"
    axial_offset_A: float = 0.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        if self.gap not in ("strain", "closed"):
            raise NanofindInputError(f"gap must be 'strain' or 'closed', got {self.gap!r}", "gap")
        object.__setattr__(self, "rotation", np.asarray(self.rotation, dtype=float))

    def segment_angles_deg(self) -> np.ndarray:
        """Azimuths of the six segment boundaries (start of segment 0 .. end of segment 4)."""
        if self.gap == "strain":
            return np.arange(6) * 72.0
        edges = np.arange(6) * TWIN_ANGLE_DEG
        edges[5] = 360.0
        return edges

    def in_plane_spacing_A(self) -> float:
        """Length of the in-plane part of the basis vectors, Å."""
        rho = self.nn_distance_A * np.sqrt(3) / 2
        if self.gap == "strain":
            rho *= np.sqrt(np.sin(np.radians(TWIN_ANGLE_DEG)) / np.sin(np.radians(72.0)))
        return float(rho)

    def _segment_basis(self, segment: int) -> tuple[np.ndarray, np.ndarray]:
        phi0 = np.radians(segment * (72.0 if self.gap == "strain" else TWIN_ANGLE_DEG))
        phi1 = phi0 + np.radians(72.0 if self.gap == "strain" else TWIN_ANGLE_DEG)
        rho = self.in_plane_spacing_A()
        p1 = rho * np.array([np.cos(phi0), np.sin(phi0)])
        p2 = rho * np.array([np.cos(phi1), np.sin(phi1)])
        return p1, p2

    def generate(self, volume: Volume, rng=None) -> GeneratedAtoms:
        """All sites inside ``volume`` (lab frame, Å), labelled by segment; ``rng`` is unused."""
        d = self.nn_distance_A
        center, radius = _transform_box(volume, self.rotation)
        reach = float(np.linalg.norm(center[:2])) + radius
        rho = self.in_plane_spacing_A()
        kmax = int(np.ceil(reach / (rho * np.sin(np.radians(60.0))))) + 2
        edges = np.radians(self.segment_angles_deg())
        parts = []
        z_number = atomic_numbers[self.element]
        for seg in range(5):
            p1, p2 = self._segment_basis(seg)
            jj, kk = (a.ravel() for a in np.meshgrid(np.arange(-kmax, kmax + 1), np.arange(-kmax, kmax + 1)))
            lateral = np.outer(jj, p1) + np.outer(kk, p2)
            r = np.linalg.norm(lateral, axis=1)
            az = np.mod(np.arctan2(lateral[:, 1], lateral[:, 0]), 2 * np.pi)
            az = np.where(az < edges[seg] - 1e-9, az + 2 * np.pi, az)
            in_sector = (az > edges[seg] + 1e-9) & (az <= edges[seg + 1] + 1e-9) & (r >= 1e-9)
            if seg == 0:
                in_sector |= r < 1e-9  # the axis column belongs to segment 0
            near = np.linalg.norm(lateral - center[:2], axis=1) <= radius
            sel = in_sector & near
            jj, kk, lateral = jj[sel], kk[sel], lateral[sel]
            z_base = (jj + kk) * d / 2 + self.axial_offset_A
            i_lo = np.floor((center[2] - radius - z_base) / d).astype(int)
            i_hi = np.ceil((center[2] + radius - z_base) / d).astype(int)
            n_i = np.maximum(i_hi - i_lo + 1, 0)
            rep = np.repeat(np.arange(len(jj)), n_i)
            ii = i_lo[rep] + (np.arange(rep.size) - np.repeat(np.cumsum(n_i) - n_i, n_i))
            local = np.column_stack([lateral[rep], z_base[rep] + ii * d])
            lab = local @ self.rotation.T
            inside = volume.contains(lab)
            local, lab = local[inside], lab[inside]
            boundary = self._on_boundary(local, edges)
            parts.append(GeneratedAtoms(lab, np.full(len(lab), z_number), np.full(len(lab), seg),
                                        np.where(boundary, int(DefectFlag.TWIN_BOUNDARY), 0)))
        atoms = concatenate(parts)
        if self.gap == "closed":
            atoms = self._remove_misfit_overlap(atoms)
        return atoms

    def _on_boundary(self, local: np.ndarray, edges: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(local[:, :2], axis=1)
        az = np.mod(np.arctan2(local[:, 1], local[:, 0]), 2 * np.pi)
        diff = np.abs(np.angle(np.exp(1j * (az[:, None] - edges[None, :5]))))
        # within half a nearest-neighbour distance of a boundary plane, measured along the arc
        return (r < 1e-9) | (np.min(diff, axis=1) * r < 0.5 * self.nn_distance_A)

    def _remove_misfit_overlap(self, atoms: GeneratedAtoms) -> GeneratedAtoms:
        first, last = atoms.grain == 0, atoms.grain == 4
        if not first.any() or not last.any():
            return atoms
        dist, _ = cKDTree(atoms.positions[first]).query(atoms.positions[last])
        drop = np.zeros(len(atoms.grain), dtype=bool)
        drop[np.flatnonzero(last)[dist < 0.8 * self.nn_distance_A]] = True
        return atoms.select(~drop)

    def bipyramid(self, layers: int) -> ConvexPolyhedron:
        """Complete decahedron (pentagonal bipyramid of {111} facets), local frame, lab-rotated.

        ``layers`` is the edge length in nearest-neighbour distances; use
        ``axial_offset_A = (layers % 2) * nn_distance_A / 2`` so the vertices are sites.
        """
        d, rho = self.nn_distance_A, self.in_plane_spacing_A()
        phis = np.radians(np.arange(5) * 72.0)
        verts = [[0, 0, layers * d / 2], [0, 0, -layers * d / 2]]
        verts += [[layers * rho * np.cos(p), layers * rho * np.sin(p), 0] for p in phis]
        return ConvexPolyhedron.from_vertices(np.array(verts) @ self.rotation.T)


def icosahedron_vertices() -> np.ndarray:
    """Twelve unit vectors to the vertices of a regular icosahedron, one along +z."""
    v = []
    for a in (-1, 1):
        for b in (-_GOLDEN, _GOLDEN):
            v += [[0, a, b], [a, b, 0], [b, 0, a]]
    v = np.array(v, dtype=float)
    v /= np.linalg.norm(v, axis=1)[:, None]
    return v @ rotation_to_z(v[np.argmax(v[:, 2])]).T


@dataclass(frozen=True)
class IcosahedronGenerator:
    """Twenty-segment multiply twinned fcc lattice around the origin, a five-fold axis along local z.

    Parameters
    ----------
    element : str
        Chemical symbol.
    nn_distance_A : float
        Bulk nearest-neighbour distance, Å.
    rotation : ndarray of shape (3, 3)
        Orientation of the local frame in the lab.
    """

    element: str
    nn_distance_A: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        object.__setattr__(self, "rotation", np.asarray(self.rotation, dtype=float))

    def faces(self) -> np.ndarray:
        """Vertex indices (20, 3) of the faces, counter-clockwise seen from outside."""
        v = icosahedron_vertices()
        faces = ConvexHull(v).simplices.copy()
        for f in faces:
            if np.dot(np.cross(v[f[1]] - v[f[0]], v[f[2]] - v[f[0]]), v[f].sum(axis=0)) < 0:
                f[[1, 2]] = f[[2, 1]]
        return faces

    def radial_spacing_A(self) -> float:
        """Distance between sites along a vertex direction, Å (about 5% below the bulk value)."""
        v = icosahedron_vertices()
        f = self.faces()[0]
        det_unit = abs(np.linalg.det(v[f]))
        return float((self.nn_distance_A**3 / np.sqrt(2) / det_unit) ** (1 / 3))

    def generate(self, volume: Volume, rng=None) -> GeneratedAtoms:
        """All sites inside ``volume`` (lab frame, Å), labelled by segment; ``rng`` is unused."""
        center, radius = _transform_box(volume, self.rotation)
        step = self.radial_spacing_A()
        nmax = int(np.ceil((np.linalg.norm(center) + radius) / (0.7 * step))) + 1
        g = np.arange(nmax + 1)
        ijk = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
        ijk = ijk[ijk.sum(axis=1) <= nmax]
        verts = icosahedron_vertices() * step
        pos, seg, bnd = [], [], []
        for s, face in enumerate(self.faces()):
            pos.append(ijk @ verts[face])
            seg.append(np.full(len(ijk), s))
            bnd.append((ijk == 0).any(axis=1))
        pos, seg, bnd = np.vstack(pos), np.concatenate(seg), np.concatenate(bnd)
        # shared faces, edges and the centre appear in several tetrahedra: keep the first
        _, first = np.unique(np.round(pos / 1e-4).astype(np.int64), axis=0, return_index=True)
        first = np.sort(first)
        pos, seg, bnd = pos[first], seg[first], bnd[first]
        lab = pos @ self.rotation.T
        inside = volume.contains(lab)
        n = int(inside.sum())
        return GeneratedAtoms(lab[inside], np.full(n, atomic_numbers[self.element]), seg[inside],
                              np.where(bnd[inside], int(DefectFlag.TWIN_BOUNDARY), 0))

    def mackay(self, shells: int) -> ConvexPolyhedron:
        """Complete icosahedron with ``shells`` shells (its vertices are sites), lab-rotated."""
        return ConvexPolyhedron.from_vertices(icosahedron_vertices() * shells * self.radial_spacing_A()
                                              @ self.rotation.T)
