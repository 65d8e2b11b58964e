"""Grains, planar defects and five-fold axes from the per-atom classes (seed 004, chapter 2).

- **Grains** are connected regions of the matrix structure (fcc, or hcp in wurtzite-like
  sublattices): atoms of that class bonded within the cut-off. A one-layer sheet of it (the middle
  layer of an extrinsic fault) is not a grain but part of its fault.
- **Planar defects** are connected sheets of the other close-packed class (hcp layers in fcc),
  split by their stacking normals so that planes meeting at a five-fold axis come apart. The
  number of atomic layers tells the kind: in fcc one hcp layer is a twin boundary, two adjacent
  layers an intrinsic stacking fault, two single layers with one fcc layer between them
  (hcp–fcc–hcp) an extrinsic fault, more layers an hcp lamella. In an hcp matrix one, two and
  three fcc layers are the I1, I2 and extrinsic faults.
- **Five-fold axes** are lines of five-fold sites (bicapped pentagonal prisms) with parallel
  axes; lines that continue each other through an icosahedron's centre are one axis.

Positions are taken as they are (a particle split by a periodic cell boundary should be unwrapped
first; nanofind scenes keep particles whole). The beam is along z: a plane is edge-on when its
normal lies in the x–y plane (``tilt_from_edge_on_deg`` = 0).

Edge-on is not enough for an image to show a fault. The stacking shift across it (the a/6<112>
Shockley partials of fcc, 1/3<1-100> in hcp) lies along one of the plane's three close-packed
rows' perpendiculars; seen down a row (fcc <110>, hcp <11-20>) the shift runs across the beam and
the columns jump at the plane, while seen down a shift direction (fcc <112>, hcp <1-100>) both
sides project onto the same columns. ``beam_to_row_deg`` is the angle between the beam and the
nearest close-packed row of the plane (0 to 30°; never below ``tilt_from_edge_on_deg``), and a
defect is visible when it is within :data:`VISIBLE_TILT_DEG`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from nanofind.structure.local import CLASS_CODE, LocalStructure

#: Fewest matrix atoms in a grain.
MIN_GRAIN_ATOMS = 4
#: Fewest atoms in a planar defect.
MIN_PLANE_ATOMS = 6
#: A connected region thinner than this (standard deviation across it, nearest-neighbour
#: distances) is a sheet; two close-packed layers are 0.41 thick.
SHEET_THICKNESS_NN = 0.25
#: Neighbouring sites belong to one plane or axis when their normals (axes) are this parallel.
PARALLEL_DEG = 15.0
#: Layers of a defect are split where heights jump by more than this fraction of a layer spacing.
LAYER_GAP_FRACTION = 0.5
#: A fault is visible in an image when the beam runs within this many degrees of a close-packed
#: row in its plane (so the plane is edge-on and the stacking shift lies across the beam).
VISIBLE_TILT_DEG = 5.0
#: A bond lies in a defect's plane when it is within this many degrees of the plane.
IN_PLANE_BOND_DEG = 20.0

_FCC_111 = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]]) / np.sqrt(3)


@dataclass(frozen=True)
class PlanarDefect:
    """One planar defect (lengths in Å, angles in degrees, lab frame, beam along z)."""

    kind: str
    particle: int
    normal: tuple[float, float, float]
    point_A: tuple[float, float, float]
    atoms: int
    layers: int
    tilt_from_edge_on_deg: float
    beam_to_row_deg: float = 90.0  #: beam to the nearest close-packed row in the plane
    sublattice: str = ""  #: element whose sublattice holds it ("" : all atoms)

    @property
    def visible(self) -> bool:
        """Whether an image along the beam (z) shows it: see the module docstring."""
        return self.beam_to_row_deg <= VISIBLE_TILT_DEG

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class FivefoldAxis:
    """One five-fold axis (Å, degrees, lab frame)."""

    particle: int
    direction: tuple[float, float, float]
    point_A: tuple[float, float, float]
    atoms: int
    length_A: float
    twin_planes: int
    angle_to_beam_deg: float
    sublattice: str = ""  #: element whose sublattice holds it ("" : all atoms)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def _canonical(v: np.ndarray) -> np.ndarray:
    """Unit vector with its first clearly non-zero component positive (a direction has no sign)."""
    v = v / np.linalg.norm(v)
    lead = v[np.argmax(np.abs(v) > 1e-3)]
    return v if lead > 0 else -v


def _principal(vectors: np.ndarray) -> np.ndarray:
    """Principal axis of sign-less unit vectors (largest eigenvector of Σ v vᵀ)."""
    w, e = np.linalg.eigh(vectors.T @ vectors)
    return _canonical(e[:, -1])


def _components(pairs: np.ndarray, n_atoms: int, atoms_idx: np.ndarray, directions: np.ndarray | None) -> np.ndarray:
    """Connected components of the given atoms, bonded by ``pairs`` (and with parallel directions)."""
    n = len(atoms_idx)
    if n == 0:
        return np.zeros(0, dtype=int)
    local_index = np.full(n_atoms, -1)
    local_index[atoms_idx] = np.arange(n)
    first, second = local_index[pairs[:, 0]], local_index[pairs[:, 1]]
    keep = (first >= 0) & (second >= 0)  # both ends among the atoms
    ends = np.stack([first[keep], second[keep]], axis=1)
    if directions is not None and len(ends):
        cos = np.abs(np.sum(directions[ends[:, 0]] * directions[ends[:, 1]], axis=1))
        ends = ends[cos > np.cos(np.radians(PARALLEL_DEG))]
    # LocalStructure.bonds gives bonds row by row in the order of its (ascending) atoms: then the
    # CSR index is a plain count
    if len(ends) and np.any(np.diff(ends[:, 0]) < 0):
        ends = ends[np.argsort(ends[:, 0], kind="stable")]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(ends[:, 0], minlength=n))])
    graph = csr_matrix((np.ones(len(ends), dtype=np.int8), ends[:, 1], indptr), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _thickness(points: np.ndarray) -> float:
    """Standard deviation of points along their thinnest direction."""
    if len(points) < 3:
        return 0.0
    centred = points - points.mean(axis=0)
    return float(np.sqrt(max(np.linalg.eigvalsh(centred.T @ centred / len(points))[0], 0.0)))


def _layers(heights: np.ndarray, spacing: float) -> int:
    h = np.sort(heights)
    return int(1 + np.count_nonzero(np.diff(h) > LAYER_GAP_FRACTION * spacing))


def _stacking_normals(local: LocalStructure, atoms_idx: np.ndarray, minority: str, matrix_idx: np.ndarray):
    """Normal of the close-packed planes at each defect site (unit vectors, lab frame)."""
    if minority == "hcp":
        return local.rotation["hcp"][atoms_idx][:, :, 2]
    # fcc sites in an hcp matrix: the {111} closest to the matrix c axis
    c_axis = _principal(local.rotation["hcp"][matrix_idx][:, :, 2]) if len(matrix_idx) else np.array([0, 0, 1.0])
    candidates = np.einsum("nij,kj->nki", local.rotation["fcc"][atoms_idx], _FCC_111)
    pick = np.argmax(np.abs(candidates @ c_axis), axis=1)
    return candidates[np.arange(len(atoms_idx)), pick]


def _matrix_structure(local: LocalStructure, members: np.ndarray, pairs: np.ndarray) -> str:
    """Whether a particle is fcc with hcp defect layers or hcp (wurtzite) with fcc ones.

    Counting atoms is not enough: a small icosahedron has more hcp atoms (its thirty twin planes)
    than fcc ones. The matrix is the structure with more atoms whose bonded neighbours all share
    it (defect layers have the matrix on both sides); multiply twinned particles (five-fold or
    icosahedral sites) are fcc; atom counts break ties.
    """
    cls = local.structure[members]
    if np.any((cls == CLASS_CODE["fivefold"]) | (cls == CLASS_CODE["icosahedral"])):
        return "fcc"
    same = local.structure[pairs[:, 0]] == local.structure[pairs[:, 1]]
    mixed = np.zeros(len(local.structure), dtype=bool)
    mixed[pairs[~same].ravel()] = True
    counts = {}
    for name in ("fcc", "hcp"):
        mine = cls == CLASS_CODE[name]
        counts[name] = (np.count_nonzero(mine & ~mixed[members]), np.count_nonzero(mine))
    return "fcc" if counts["fcc"] >= counts["hcp"] else "hcp"


@dataclass
class DefectAnalysis:
    """Grains, planar defects and five-fold axes of a model (per-atom arrays of length n)."""

    grain: np.ndarray  #: grain id per atom, −1 outside grains
    plane: np.ndarray  #: index into ``planes`` per atom, −1 elsewhere
    axis: np.ndarray  #: index into ``axes`` per atom, −1 elsewhere
    planes: list[PlanarDefect]
    axes: list[FivefoldAxis]
    grain_owner: list[tuple[int, str]]  #: (particle, sublattice element or "") of each grain


def find_defects(positions: np.ndarray, local: LocalStructure) -> DefectAnalysis:
    """Grains, planar defects and five-fold axes from a :class:`LocalStructure`.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions, Å.
    local : LocalStructure
        Per-atom classes and fitted orientations of the same atoms.
    """
    n = len(positions)
    grain = np.full(n, -1)
    plane = np.full(n, -1)
    axis = np.full(n, -1)
    planes: list[PlanarDefect] = []
    axes: list[FivefoldAxis] = []
    grain_owner: list[tuple[int, str]] = []
    for g in range(len(local.cutoff_A)):
        members = np.flatnonzero(local.group == g)
        if not len(members):
            continue
        d_nn = float(local.nn_distance_A[g])
        spacing = d_nn * np.sqrt(2 / 3)  # close-packed layer spacing
        particle = int(local.particle[members[0]])
        element = local.group_element[g]
        cls = local.structure[members]
        pairs = local.bonds(members)
        matrix = _matrix_structure(local, members, pairs)
        minority = "hcp" if matrix == "fcc" else "fcc"
        matrix_idx = members[cls == CLASS_CODE[matrix]]
        sheets = _grains(positions, pairs, matrix_idx, d_nn, grain, grain_owner, (particle, element))
        defect_idx = members[cls == CLASS_CODE[minority]]
        normals = _stacking_normals(local, defect_idx, minority, matrix_idx)
        first_plane = len(planes)
        _planes(positions, pairs, defect_idx, normals, spacing, matrix, particle, plane, planes)
        _extrinsic(positions, sheets, spacing, d_nn, matrix, plane, planes, first_plane)
        five_idx = members[cls == CLASS_CODE["fivefold"]]
        first_axis = len(axes)
        _axes(positions, local, pairs, five_idx, d_nn, spacing, particle, axis, axes, planes[first_plane:])
        if element:
            planes[first_plane:] = [replace(p, sublattice=element) for p in planes[first_plane:]]
            axes[first_axis:] = [replace(a, sublattice=element) for a in axes[first_axis:]]
    kept = [k for k, p in enumerate(planes) if p.kind != "merged"]
    renumber = np.full(len(planes) + 1, -1)
    renumber[kept] = np.arange(len(kept))
    return DefectAnalysis(grain, renumber[plane], axis, [planes[k] for k in kept], axes, grain_owner)


def _grains(positions, pairs, matrix_idx, d_nn, grain, grain_owner, owner) -> list[np.ndarray]:
    """Label grains; return the one-layer sheets of the matrix structure (fault layers)."""
    labels = _components(pairs, len(positions), matrix_idx, None)
    sheets = []
    for label in np.unique(labels):
        idx = matrix_idx[labels == label]
        if len(idx) < MIN_GRAIN_ATOMS:
            continue
        if len(idx) >= 3 and _thickness(positions[idx]) < SHEET_THICKNESS_NN * d_nn:
            sheets.append(idx)
            continue
        grain[idx] = len(grain_owner)
        grain_owner.append(owner)
    return sheets


def _planes(positions, pairs, defect_idx, normals, spacing, matrix, particle, plane, planes) -> None:
    labels = _components(pairs, len(positions), defect_idx, normals)
    kinds = {"fcc": {1: "twin", 2: "intrinsic"}, "hcp": {1: "fault_I1", 2: "fault_I2", 3: "fault_E"}}[matrix]
    lamella = "hcp_lamella" if matrix == "fcc" else "fcc_lamella"
    label_of = np.full(len(positions), -1)
    label_of[defect_idx] = labels
    first, second = label_of[pairs[:, 0]], label_of[pairs[:, 1]]
    inner = (first >= 0) & (first == second)
    bond_label = first[inner]
    bonds = positions[pairs[inner, 1]] - positions[pairs[inner, 0]]
    for label in np.unique(labels):
        idx = defect_idx[labels == label]
        if len(idx) < MIN_PLANE_ATOMS:
            continue
        normal = _principal(normals[labels == label])
        layers = _layers(positions[idx] @ normal, spacing)
        plane[idx] = len(planes)
        planes.append(PlanarDefect(kinds.get(layers, lamella), particle, tuple(normal.tolist()),
                                   tuple(positions[idx].mean(axis=0).tolist()), len(idx), layers,
                                   float(np.degrees(np.arcsin(min(1.0, abs(normal[2]))))),
                                   beam_to_row_deg(bonds[bond_label == label], normal)))


def beam_to_row_deg(bonds: np.ndarray, normal: np.ndarray, beam=(0.0, 0.0, 1.0)) -> float:
    """Angle between the beam and the nearest close-packed row of a close-packed plane, degrees.

    Parameters
    ----------
    bonds : ndarray of shape (m, 3)
        Bond vectors between atoms of the plane, Å (those out of the plane are ignored).
    normal : ndarray of shape (3,)
        Unit normal of the plane.
    beam : sequence of 3 floats
        Beam direction (default z).

    Returns
    -------
    float
        0 when the beam runs along a row (fcc <110>, hcp <11-20> in the plane), up to 90 when it
        is normal to the plane; 90 when the plane holds no in-plane bond.
    """
    normal = np.asarray(normal, float)
    beam = np.asarray(beam, float) / np.linalg.norm(beam)
    length = np.linalg.norm(bonds, axis=1)
    in_plane = np.abs(bonds @ normal) < np.sin(np.radians(IN_PLANE_BOND_DEG)) * np.maximum(length, 1e-12)
    if not np.any(in_plane):
        return 90.0
    e1 = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    theta = np.arctan2(bonds[in_plane] @ e2, bonds[in_plane] @ e1)
    # rows repeat every 60°: the mean of exp(6iθ) gives their common phase
    phase = np.angle(np.mean(np.exp(6j * theta))) / 6
    rows = [np.cos(phase + k * np.pi / 3) * e1 + np.sin(phase + k * np.pi / 3) * e2 for k in range(3)]
    return float(np.degrees(np.arccos(min(1.0, max(abs(r @ beam) for r in rows)))))


def _extrinsic(positions, sheets, spacing, d_nn, matrix, plane, planes, first) -> None:
    """Merge two single-layer planes two layers apart, with a matrix sheet between, into one fault."""
    if matrix != "fcc":
        return
    for sheet in sheets:
        centre = positions[sheet].mean(axis=0)
        near = []
        for k in range(first, len(planes)):
            p = planes[k]
            n = np.asarray(p.normal)
            if p.kind != "twin" or _thickness_along(positions[sheet], n) > 0.3 * spacing:
                continue
            offset = abs((np.asarray(p.point_A) - centre) @ n)
            if abs(offset - spacing) < 0.35 * spacing:
                near.append(k)
        if len(near) != 2:
            continue
        a, b = (planes[k] for k in near)
        keep = near[0]
        idx = np.concatenate([np.flatnonzero(plane == near[0]), np.flatnonzero(plane == near[1]), sheet])
        plane[idx] = keep
        planes[keep] = replace(a, kind="extrinsic", point_A=tuple(positions[idx].mean(axis=0).tolist()),
                               atoms=len(idx), layers=3)
        planes[near[1]] = replace(b, kind="merged", atoms=0)


def _thickness_along(points: np.ndarray, normal: np.ndarray) -> float:
    return float(np.std(points @ normal))


def _axes(positions, local, pairs, five_idx, d_nn, spacing, particle, axis, axes, group_planes) -> None:
    if not len(five_idx):
        return
    directions = local.rotation["fivefold"][five_idx][:, :, 2]
    labels = _components(pairs, len(positions), five_idx, directions)
    pieces = [(five_idx[labels == k], _principal(directions[labels == k])) for k in np.unique(labels)]
    # pieces that continue each other (through an icosahedron's centre) form one axis
    parent = list(range(len(pieces)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, (idx_i, dir_i) in enumerate(pieces):
        for j in range(i + 1, len(pieces)):
            idx_j, dir_j = pieces[j]
            if abs(dir_i @ dir_j) < np.cos(np.radians(PARALLEL_DEG)):
                continue
            offset = positions[idx_j].mean(axis=0) - positions[idx_i].mean(axis=0)
            if np.linalg.norm(offset - (offset @ dir_i) * dir_i) < 0.5 * d_nn:
                parent[root(j)] = root(i)
    for r in sorted({root(i) for i in range(len(pieces))}):
        idx = np.concatenate([pieces[i][0] for i in range(len(pieces)) if root(i) == r])
        if len(idx) < 2:
            continue
        pts = positions[idx]
        direction = _principal(directions[np.isin(five_idx, idx)])
        centre = pts.mean(axis=0)
        along = (pts - centre) @ direction
        containing = [np.asarray(p.normal) for p in group_planes if p.kind == "twin"
                      and abs(np.asarray(p.normal) @ direction) < np.sin(np.radians(PARALLEL_DEG))
                      and abs((centre - np.asarray(p.point_A)) @ np.asarray(p.normal)) < 0.5 * spacing]
        distinct: list[np.ndarray] = []  # twin faces on both sides of an icosahedron's centre are one plane
        for n in containing:
            if all(abs(n @ m) < np.cos(np.radians(PARALLEL_DEG)) for m in distinct):
                distinct.append(n)
        twins = len(distinct)
        axis[idx] = len(axes)
        axes.append(FivefoldAxis(particle, tuple(direction.tolist()), tuple(centre.tolist()), len(idx),
                                 float(np.ptp(along) + d_nn), twins,
                                 float(np.degrees(np.arccos(min(1.0, abs(direction[2])))))))
