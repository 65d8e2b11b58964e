"""Crystal generators, with parallel planar defects (twins, lamellae, stacking faults).

A :class:`CrystalGenerator` fills any volume with the lattice of a unit cell, oriented by a
rotation. Planar defects split the crystal into domains along one plane normal. Domain
``k`` is the image of the perfect lattice under an isometry ``T_k`` built up plane by plane:

- a **twin** composes a 180° rotation about the plane normal through an atom site of the
  layer on the plane. For centrosymmetric lattices such as fcc this is the same set of
  atoms as the mirror across the plane; for zinc blende it is the correct (polarity
  preserving) twin. Each twin starts a new grain.
- a **stacking fault** composes a rigid shift of everything above the plane by the in-plane
  offset between adjacent layers (a/6<112>, the Shockley partial, in fcc). An extrinsic
  fault is two such shifts on adjacent planes. Faults do not start a new grain.

Requested plane positions are snapped to the nearest plane that keeps every atom's
nearest-neighbour coordination, tested on a patch of the actual structure, so the same
code places faults correctly in fcc, zinc blende (between bilayers) and wurtzite.

Atoms on or next to a defect plane are flagged in the ``defect`` label (see
:mod:`nanofind.scene.labels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.scene.labels import DefectFlag
from nanofind.scene.lattice import nearest_neighbour_distance, plane_normal, plane_spacing
from nanofind.scene.volumes import Volume


class GeneratedAtoms(NamedTuple):
    """Atoms produced by a generator, before labels are attached."""

    positions: np.ndarray  # (N, 3) Å
    numbers: np.ndarray  # (N,) atomic numbers
    grain: np.ndarray  # (N,) grain index local to the generator, -1 for amorphous
    defect: np.ndarray  # (N,) DefectFlag bits

    @staticmethod
    def empty() -> GeneratedAtoms:
        return GeneratedAtoms(np.zeros((0, 3)), np.zeros(0, int), np.zeros(0, int), np.zeros(0, int))

    def select(self, mask: np.ndarray) -> GeneratedAtoms:
        return GeneratedAtoms(*(a[mask] for a in self))


def concatenate(parts: Sequence[GeneratedAtoms]) -> GeneratedAtoms:
    """Join generated atom sets in order."""
    if not parts:
        return GeneratedAtoms.empty()
    return GeneratedAtoms(*(np.concatenate([getattr(p, f) for p in parts]) for f in GeneratedAtoms._fields))


def lattice_sites_in_box(unit_cell: Atoms, lower_A: np.ndarray, upper_A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and atomic numbers of all crystal sites inside an axis-aligned box (crystal frame)."""
    cell = np.asarray(unit_cell.cell)
    corners = np.array([[x, y, z] for x in (lower_A[0], upper_A[0]) for y in (lower_A[1], upper_A[1])
                        for z in (lower_A[2], upper_A[2])])
    frac = corners @ np.linalg.inv(cell)
    lo = np.floor(frac.min(axis=0)).astype(int) - 1
    hi = np.ceil(frac.max(axis=0)).astype(int) + 1
    grid = np.stack(np.meshgrid(*(np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)), indexing="ij"),
                    axis=-1).reshape(-1, 3)
    origins = grid @ cell
    pos = (origins[:, None, :] + unit_cell.positions[None, :, :]).reshape(-1, 3)
    nums = np.tile(unit_cell.numbers, len(origins))
    inside = np.all((pos >= lower_A - 1e-9) & (pos <= upper_A + 1e-9), axis=1)
    return pos[inside], nums[inside]


@dataclass(frozen=True)
class PlanarDefect:
    """One planar defect of a :class:`CrystalGenerator`.

    Parameters
    ----------
    kind : {"twin", "intrinsic", "extrinsic"}
        Twin boundary, or intrinsic / extrinsic stacking fault.
    plane : sequence of 3 or 4 ints
        Miller (or Miller–Bravais) indices of the plane in the unit cell's frame.
    position_A : float
        Requested distance of the plane from the crystal origin along its normal, Å; the
        nearest valid plane is used.
    """

    kind: Literal["twin", "intrinsic", "extrinsic"]
    plane: tuple[float, ...] = (1, 1, 1)
    position_A: float = 0.0

    @classmethod
    def through(cls, kind: Literal["twin", "intrinsic", "extrinsic"], plane: Sequence[float],
                point_A: Sequence[float], unit_cell: Atoms) -> PlanarDefect:
        """Defect on the plane ``plane`` that passes through ``point_A`` (crystal frame, Å)."""
        n = plane_normal(np.asarray(unit_cell.cell), plane)
        return cls(kind, tuple(plane), float(n @ np.asarray(point_A, dtype=float)))


class _Isometry(NamedTuple):
    rotation: np.ndarray
    shift: np.ndarray

    def apply(self, x):
        return x @ self.rotation.T + self.shift

    def inverse_apply(self, y):
        return (y - self.shift) @ self.rotation

    def then(self, other: _Isometry) -> _Isometry:
        """``other`` applied after ``self``."""
        return _Isometry(other.rotation @ self.rotation, other.rotation @ self.shift + other.shift)


_IDENTITY = _Isometry(np.eye(3), np.zeros(3))


class _Domain(NamedTuple):
    transform: _Isometry
    lower_A: float  # domain holds lower < n·x <= upper
    upper_A: float
    grain: int


@dataclass(frozen=True)
class CrystalGenerator:
    """Lattice of ``unit_cell`` rotated by ``rotation`` about the origin, with planar defects.

    Parameters
    ----------
    unit_cell : ase.Atoms
        Periodic unit cell (see :func:`nanofind.scene.lattice.load_unit_cell`).
    rotation : ndarray of shape (3, 3)
        Orientation: crystal-frame vectors ``x`` appear at ``rotation @ x``.
    defects : sequence of PlanarDefect
        Parallel planar defects (all on the same plane normal).
    """

    unit_cell: Atoms
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    defects: tuple[PlanarDefect, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "rotation", np.asarray(self.rotation, dtype=float))
        object.__setattr__(self, "defects", tuple(self.defects))
        object.__setattr__(self, "_domains", self._build_domains())

    # ---- domain construction -------------------------------------------------------------
    def _normal(self) -> np.ndarray | None:
        if not self.defects:
            return None
        cell = np.asarray(self.unit_cell.cell)
        normals = [plane_normal(cell, d.plane) for d in self.defects]
        for d, n in zip(self.defects[1:], normals[1:], strict=True):
            if abs(abs(float(n @ normals[0])) - 1) > 1e-6:
                raise NanofindInputError(f"planar defects must be parallel; {d.plane} is not parallel to "
                                         f"{self.defects[0].plane}", "defects")
        return normals[0]

    def _build_domains(self) -> list[_Domain]:
        n = self._normal()
        if n is None:
            return [_Domain(_IDENTITY, -np.inf, np.inf, 0)]
        cell = np.asarray(self.unit_cell.cell)
        spacing = plane_spacing(cell, self.defects[0].plane)
        d_nn = nearest_neighbour_distance(self.unit_cell)
        heights = np.unique(np.round((self.unit_cell.positions @ n) % spacing, 6) % spacing)
        gaps = (heights + np.diff(np.append(heights, heights[0] + spacing)) / 2) % spacing
        shift = self._layer_offset(n, d_nn)
        ops = []  # (height, kind, isometry-factory)
        for d in sorted(self.defects, key=lambda x: x.position_A):
            if d.kind == "twin":
                ops.append((d.position_A, "twin", heights))
            elif d.kind in ("intrinsic", "extrinsic"):
                ops.append((d.position_A, "fault", gaps))
                if d.kind == "extrinsic":
                    ops.append((None, "fault", gaps))  # the next gap after the previous one
            else:
                raise NanofindInputError(f"unknown planar defect kind {d.kind!r}", "defects")
        domains: list[_Domain] = []
        current, lower, grain = _IDENTITY, -np.inf, 0
        for requested, kind, candidates in ops:
            height, op = self._choose_plane(current, n, requested, lower, kind, candidates, spacing, shift, d_nn)
            if height <= lower + 1e-6:
                raise NanofindInputError(f"planar defects at {requested} Å are closer than one layer; "
                                         "space them further apart", "defects")
            domains.append(_Domain(current, lower, height, grain))
            current, lower = current.then(op), height
            grain += kind == "twin"
        domains.append(_Domain(current, lower, np.inf, grain))
        return domains

    def _layer_offset(self, n: np.ndarray, d_nn: float) -> np.ndarray:
        """In-plane offset between adjacent close-packed layers (a/6<112> in fcc).

        Taken from an atom to the nearest same-element atom in the lowest layer above it that
        sits on a different lateral site (in diamond and zinc blende the layer of bonded partners
        directly above shares the site and is skipped).
        """
        pos, nums = lattice_sites_in_box(self.unit_cell, -np.full(3, 3 * d_nn), np.full(3, 3 * d_nn))
        ref = np.argmin(np.linalg.norm(pos, axis=1))
        rel = pos - pos[ref]
        h = rel @ n
        inplane = rel - np.outer(h, n)
        length = np.linalg.norm(inplane, axis=1)
        above = (nums == nums[ref]) & (h > 1e-6)
        for height in np.unique(np.round(h[above], 6)):
            layer = np.flatnonzero(above & (np.abs(h - height) < 1e-5))
            best = layer[np.argmin(length[layer])]
            if length[best] > 1e-6:
                return inplane[best]
        raise NanofindInputError("the structure has no shifted layers along this plane normal", "defects")

    def _choose_plane(self, current, n, requested, lower, kind, candidates, spacing, shift, d_nn):
        """Nearest plane to ``requested`` whose operation keeps the coordination of every atom."""
        patch_r = 4.5 * d_nn
        options = []
        for h0 in candidates:
            if requested is None:  # extrinsic second shift: next gap above ``lower``
                base = h0 + spacing * np.ceil((lower + 1e-6 - h0) / spacing)
            else:
                base = h0 + spacing * np.round((requested - h0) / spacing)
            ops = ([self._twin_op(current, n, base)] if kind == "twin"
                   else [_Isometry(np.eye(3), shift), _Isometry(np.eye(3), -shift)])
            for op in ops:
                if self._keeps_coordination(current, op, n, base, patch_r, d_nn):
                    options.append((abs(base - (lower if requested is None else requested)), base, op))
        if not options:
            formula = self.unit_cell.get_chemical_formula()
            what = "twin" if kind == "twin" else "stacking fault"
            raise NanofindInputError(f"no {what} on {tuple(self.defects[0].plane)} planes of {formula} changes the "
                                     "crystal while keeping every atom's coordination", "defects")
        options.sort(key=lambda o: o[0])
        return options[0][1], options[0][2]

    def _sites_of(self, transform: _Isometry, center: np.ndarray, radius: float):
        c = transform.inverse_apply(center)
        pos, nums = lattice_sites_in_box(self.unit_cell, c - radius, c + radius)
        pos = transform.apply(pos)
        keep = np.linalg.norm(pos - center, axis=1) <= radius
        return pos[keep], nums[keep]

    def _twin_op(self, current: _Isometry, n: np.ndarray, height: float) -> _Isometry:
        pos, _ = self._sites_of(current, height * n, 3 * np.linalg.norm(self.unit_cell.cell, axis=1).max())
        on_plane = pos[np.abs(pos @ n - height) < 1e-5]
        p = on_plane[np.argmin(np.linalg.norm(on_plane - height * n, axis=1))]
        rot = 2 * np.outer(n, n) - np.eye(3)
        return _Isometry(rot, p - rot @ p)

    def _keeps_coordination(self, current, op, n, height, radius, d_nn) -> bool:
        """Whether ``op`` above the plane changes the crystal yet keeps every atom's coordination."""
        center = height * n
        pos, nums = self._sites_of(current, center, radius)
        after = current.then(op)
        pos2, nums2 = self._sites_of(after, center, radius)
        below = pos @ n <= height + 1e-6
        above2 = pos2 @ n > height + 1e-6
        faulted = np.vstack([pos[below], pos2[above2]])
        faulted_nums = np.concatenate([nums[below], nums2[above2]])
        if cKDTree(pos).query(faulted)[0].max() < 1e-3:
            return False  # the operation is a symmetry of the crystal: no defect at all
        if cKDTree(faulted).query(faulted, k=2)[0][:, 1].min() < 0.95 * d_nn:
            return False
        inner = np.linalg.norm(pos - center, axis=1) < radius - 1.5 * d_nn
        ref = cKDTree(pos).query_ball_point(pos[inner], 1.1 * d_nn, return_length=True)
        allowed = {(z, c) for z, c in zip(nums[inner].tolist(), ref.tolist(), strict=True)}
        inner = np.linalg.norm(faulted - center, axis=1) < radius - 1.5 * d_nn
        new = cKDTree(faulted).query_ball_point(faulted[inner], 1.1 * d_nn, return_length=True)
        return all((z, c) in allowed for z, c in zip(faulted_nums[inner].tolist(), new.tolist(), strict=True))

    # ---- generation ----------------------------------------------------------------------
    @property
    def domain_count(self) -> int:
        """Number of grains (twin domains) the defects create."""
        return self._domains[-1].grain + 1

    def defect_plane_heights_A(self) -> list[float]:
        """Heights of the defect planes along the defect normal, crystal frame, Å."""
        return [d.upper_A for d in self._domains[:-1]]

    def defect_normal(self) -> np.ndarray | None:
        """Unit normal of the defect planes in the lab frame (after rotation), or None."""
        n = self._normal()
        return None if n is None else self.rotation @ n

    def generate(self, volume: Volume, rng=None) -> GeneratedAtoms:
        """All atoms of the (defected) crystal inside ``volume`` (lab frame, Å); ``rng`` is unused."""
        lo, hi = volume.bounding_box()
        center_lab = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo) / 2) + 1e-6
        center = self.rotation.T @ center_lab
        n = self._normal()
        parts = []
        d_nn = nearest_neighbour_distance(self.unit_cell) if n is not None else 0.0
        planes = self.defect_plane_heights_A()
        for dom in self._domains:
            pos, nums = self._sites_of(dom.transform, center, radius)
            if n is not None:
                h = pos @ n
                pos, nums, h = (a[(h > dom.lower_A + 1e-6) & (h <= dom.upper_A + 1e-6)] for a in (pos, nums, h))
            lab = pos @ self.rotation.T
            inside = volume.contains(lab)
            lab, nums = lab[inside], nums[inside]
            defect = np.zeros(len(lab), dtype=int)
            if n is not None and planes:
                dist = np.min(np.abs((pos[inside] @ n)[:, None] - np.array(planes)[None, :]), axis=1)
                near = dist < 0.6 * d_nn
                defect[near] = self._plane_flags(pos[inside][near] @ n)
            parts.append(GeneratedAtoms(lab, nums, np.full(len(lab), dom.grain), defect))
        return concatenate(parts)

    def _plane_flags(self, heights: np.ndarray) -> np.ndarray:
        """Flag for atoms next to each defect plane: the kind of the nearest plane."""
        planes = np.array(self.defect_plane_heights_A())
        kinds = []
        for d in sorted(self.defects, key=lambda x: x.position_A):
            kinds.append(DefectFlag.TWIN_BOUNDARY if d.kind == "twin" else DefectFlag.STACKING_FAULT)
            if d.kind == "extrinsic":
                kinds.append(DefectFlag.STACKING_FAULT)
        nearest = np.argmin(np.abs(heights[:, None] - planes[None, :]), axis=1)
        return np.array(kinds, dtype=int)[nearest]


def supports_planar_defect(unit_cell: Atoms, kind: str, plane: Sequence[float]) -> bool:
    """Whether a ``kind`` defect on ``plane`` can be built in this structure (see :class:`CrystalGenerator`)."""
    try:
        CrystalGenerator(unit_cell, defects=(PlanarDefect(kind, tuple(plane), 0.0),))
    except NanofindInputError:
        return False
    return True
