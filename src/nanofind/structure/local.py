"""Local structure of every atom of an atomic model: coordination, order parameters and a class.

Follows seed 004, chapter 2:

- the coordination number counts neighbours within a cut-off (3.75 Å for Pd in the seed, i.e.
  1.28 nearest-neighbour distances; that ratio is the default here, so the cut-off follows the
  material), and fewer than :data:`MIN_COORDINATION` (10) marks a surface or disordered site;
- fcc and hcp templates (and icosahedral, five-fold and bcc ones) are fitted to the nearest
  neighbours with the order parameter of Eq. 2.1 (:mod:`nanofind.structure.matching`);
- the class is the best template, with ``rhcp`` when fcc and hcp agree equally well (within
  :data:`RHCP_MARGIN`), and ``disordered`` when no template reaches :data:`MIN_ORDER`.

Which atoms, and which neighbours:

- In a nanofind scene only particle atoms (``is_particle``) are analysed, and each particle
  (``object_id``) on its own, so a substrate or a touching particle never counts as a neighbour.
  Other models are split into particles by connectivity.
- Tetrahedrally bonded compounds (CdSe zinc blende and wurtzite, …) are not close-packed, but each
  element's sublattice is: fcc in zinc blende, hcp in wurtzite. When an atom's 12th neighbour is
  much further than its first (:data:`CLOSE_PACKED_SHELL_RATIO`), each element of that particle is
  analysed on its own sublattice.
- Periodic cell axes (``atoms.pbc``) of an orthorhombic cell are honoured (minimum image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.structure.matching import fit_templates
from nanofind.structure.templates import TEMPLATE_NAMES, template

#: Class names; ``structure`` codes index this tuple. ``other``: not analysed (substrate atoms).
CLASSES = ("other", "fcc", "hcp", "rhcp", "bcc", "icosahedral", "fivefold", "surface", "disordered")
CLASS_CODE = {name: code for code, name in enumerate(CLASSES)}
#: Seed 004: neighbours within 3.75 Å of Pd atoms whose mean nearest-neighbour distance is 2.93 Å.
CUTOFF_PER_NN = 3.75 / 2.93
#: Seed 004: sites with fewer neighbours are surface or disordered.
MIN_COORDINATION = 10
#: Below this best order parameter (of 12) a site is disordered.
MIN_ORDER = 7.0
#: fcc and hcp order parameters closer than this (of 12) make a site rhcp ...
RHCP_MARGIN = 1.0
#: ... when both reach this: the seed's rhcp sites agree with 10 of 12 vertices of each template,
#: while a site next to the surface that lost neighbours agrees weakly with both.
RHCP_MIN_ORDER = 8.5
#: A site with fewer than 10 neighbours is surface when the mean of its neighbour vectors is off
#: by more than this many nearest-neighbour distances (a buried vacancy leaves it near zero).
SURFACE_OFFSET_NN = 0.2
#: Median 12th-to-1st neighbour distance above which a compound is analysed per sublattice
#: (close packing and bcc: 1.0 and 1.15; tetrahedral bonding: 1.63).
CLOSE_PACKED_SHELL_RATIO = 1.3
#: Templates whose fitted orientations are kept (stacking normals and five-fold axes need them).
ORIENTED = ("fcc", "hcp", "fivefold")
#: Neighbours looked at per site (bcc needs 14); the coordination is counted up to this many.
NEIGHBOURS = 14


@dataclass(frozen=True)
class LocalStructure:
    """Per-atom local structure of a model (arrays of length ``len(atoms)``).

    Attributes
    ----------
    coordination : ndarray of int
        Neighbours within ``cutoff_A`` (on the atom's sublattice where that applies); −1 where
        not analysed.
    order : dict of str to ndarray
        Eq. 2.1 order parameter per template (0–12, bcc 0–14); NaN where not fitted (atoms with
        fewer than 10 neighbours; on close-packed sites only fcc and hcp are fitted).
    rotation : dict of str to ndarray of shape (n, 3, 3)
        Fitted orientation (template frame to lab frame) of the templates in :data:`ORIENTED`.
    structure : ndarray of int
        Class code, an index into :data:`CLASSES`.
    particle : ndarray of int
        Particle index (−1 where not analysed).
    group : ndarray of int
        Analysis group: a particle, or one element's sublattice of a particle (−1: none).
    nn_distance_A : ndarray of float
        Per group: median nearest-neighbour distance, Å.
    cutoff_A : ndarray of float
        Per group: the coordination cut-off, Å.
    group_element : list of str
        Per group: the element of a sublattice group, or ``""`` when all elements count.
    neighbours : ndarray of int, shape (n, 14)
        Indices of each atom's nearest neighbours in its group, nearest first (−1: none).
    neighbour_distance_A : ndarray of float32, shape (n, 14)
        Their distances, Å (inf: none).
    """

    coordination: np.ndarray
    order: dict[str, np.ndarray]
    rotation: dict[str, np.ndarray]
    structure: np.ndarray
    particle: np.ndarray
    group: np.ndarray
    nn_distance_A: np.ndarray
    cutoff_A: np.ndarray
    group_element: list[str] = field(default_factory=list)
    neighbours: np.ndarray = field(default_factory=lambda: np.zeros((0, NEIGHBOURS), dtype=int))
    neighbour_distance_A: np.ndarray = field(default_factory=lambda: np.zeros((0, NEIGHBOURS), dtype=np.float32))

    def bonds(self, atoms_idx: np.ndarray) -> np.ndarray:
        """Pairs (i < j) of the given atoms that are neighbours within their group's cut-off, by i in given order."""
        inside = np.zeros(len(self.structure), dtype=bool)
        inside[atoms_idx] = True
        cut = self.cutoff_A[self.group[atoms_idx]].astype(np.float32)[:, None]
        which = _as_slice(atoms_idx)  # a view when it can
        neighbours = self.neighbours[which]
        rows, cols = np.nonzero((self.neighbour_distance_A[which] <= cut) & (neighbours >= 0))
        other = neighbours[rows, cols]
        first = atoms_idx[rows]
        keep = inside[other] & (first < other)  # each bond once
        return np.stack([first[keep], other[keep]], axis=1)

    @property
    def class_names(self) -> np.ndarray:
        """Class name of every atom."""
        return np.asarray(CLASSES, dtype=object)[self.structure]


def cell_periods(atoms: Atoms) -> np.ndarray | None:
    """Periods of the periodic axes of an orthorhombic cell (inf for open axes), or None."""
    if not np.any(atoms.pbc):
        return None
    cell = np.asarray(atoms.cell)
    if np.any(np.abs(cell - np.diag(np.diag(cell))) > 1e-6):
        return None  # minimum image is only done for orthorhombic cells
    lengths = np.diag(cell).astype(float)
    return np.where(np.asarray(atoms.pbc) & (lengths > 0), lengths, np.inf)


def kd_tree(points: np.ndarray, periods: np.ndarray | None, reach: float):
    """A KD-tree of points (and the points in its frame), periodic along finite ``periods``, Å."""
    if periods is None or np.all(np.isinf(periods)):
        return cKDTree(points), points
    lo = points.min(axis=0)
    shifted = points - np.where(np.isinf(periods), lo, 0)
    box = np.where(np.isinf(periods), np.ptp(points, axis=0) + 2 * reach + 1, periods)
    wrapped = np.where(np.isinf(periods), shifted, np.mod(shifted, np.where(np.isinf(periods), 1, periods)))
    wrapped = np.where(wrapped >= box, 0, wrapped)
    return cKDTree(wrapped, boxsize=box), wrapped


class _Neighbours(NamedTuple):
    distance: np.ndarray  #: (n, k) Å, float32, inf past the end
    vector: np.ndarray  #: (n, k, 3) Å, float32, minimum image
    index: np.ndarray  #: (n, k) neighbour indices, −1 past the end


#: Reach of the first, bounded neighbour query, in nearest-neighbour distances: the 14th neighbour
#: of a bulk site lies at 1.41 (close packing), 1.15 (bcc) or 1.63 (tetrahedral bonding).
_QUERY_REACH_NN = 1.8
#: Sites sampled to estimate the nearest-neighbour distance before the bounded query.
_REACH_SAMPLE = 2000


def _bounded_query(tree, frame: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``tree.query(frame, k)``, exactly, but faster: bounded first, unbounded only where that fell short.

    A bound on the search radius lets the KD-tree prune most of its branches (about a third
    less time on dense crystals); the few sites (surface, isolated) that do not find k points
    within it are searched again without one.
    """
    n = len(frame)
    if n < 4 * _REACH_SAMPLE:  # small: the plain query is quick, and a sample would cost as much
        return tree.query(frame, k=k, workers=-1)
    first = tree.query(frame[:: n // _REACH_SAMPLE], k=2)[0][:, 1]
    first = first[np.isfinite(first) & (first > 0)]
    if not len(first):
        return tree.query(frame, k=k, workers=-1)
    d, idx = tree.query(frame, k=k, workers=-1, distance_upper_bound=_QUERY_REACH_NN * float(np.median(first)))
    short = np.flatnonzero(~np.isfinite(d[:, -1]))
    if len(short):
        d[short], idx[short] = tree.query(frame[short], k=k, workers=-1)
    return d, idx


def _neighbours(points: np.ndarray, periods: np.ndarray | None, k: int) -> _Neighbours:
    """Each point's k nearest other points."""
    n = len(points)
    kk = min(k, n - 1)
    if kk < 1:
        return _Neighbours(np.full((n, k), np.inf, dtype=np.float32), np.zeros((n, k, 3), dtype=np.float32),
                           np.full((n, k), -1))
    tree, frame = kd_tree(points, periods, 10.0)
    d, idx = _bounded_query(tree, frame, kk + 1)
    d, idx = d[:, 1:], idx[:, 1:]
    points = points.astype(np.float32)  # 1e-4 Å at 1000 Å from the origin: far below thermal motion
    v = points[idx] - points[:, None]
    if periods is not None:
        finite = np.isfinite(periods)
        p = np.where(finite, periods, 1.0)
        v = np.where(finite, v - p * np.round(v / p), v)
    if kk < k:  # fewer points than neighbours asked for
        d = np.pad(d, ((0, 0), (0, k - kk)), constant_values=np.inf)
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
        v = np.pad(v, ((0, 0), (0, k - kk), (0, 0)))
    return _Neighbours(d.astype(np.float32), v, idx)


#: Bonds per atom that decide which atoms form one particle: its nearest few within reach are
#: plenty to connect a crystal (or a glass), and half the bonds halve the time.
_CLUSTER_BONDS = 6


def _clusters(found: _Neighbours, reach: float) -> np.ndarray:
    """Connected clusters of points bonded (nearest :data:`_CLUSTER_BONDS`) within ``reach`` Å."""
    from scipy.sparse import csr_matrix

    n = len(found.distance)
    near = found.distance[:, :_CLUSTER_BONDS] <= reach
    counts = near.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    graph = csr_matrix((np.ones(int(indptr[-1]), dtype=np.int8), found.index[:, :_CLUSTER_BONDS][near], indptr),
                       shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _median_nn(found: _Neighbours) -> float:
    first = found.distance[:, 0]
    return float(np.median(first[np.isfinite(first)])) if np.isfinite(first).any() else 0.0


def _needs_sublattices(found: _Neighbours) -> bool:
    """Whether an atom's 12th neighbour is much further than its first (tetrahedral bonding)."""
    ok = np.isfinite(found.distance[:, 11])
    ratio = np.median(found.distance[ok, 11] / found.distance[ok, 0]) if ok.any() else 1.0
    return bool(ratio > CLOSE_PACKED_SHELL_RATIO)


def _global(members: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Neighbour indices into ``members`` made atom indices (−1 stays −1)."""
    if len(members) and members[0] == 0 and members[-1] == len(members) - 1:
        return index  # members are atoms 0 … n−1: already atom indices
    return np.where(index >= 0, members[np.maximum(index, 0)], -1)


def _groups(atoms: Atoms, analysed: np.ndarray, periods, sublattices: str):
    """Analysis groups: (particle, atom indices, element or "", neighbours of those atoms).

    Particles are the ``object_id`` objects where the model has them, else bonded clusters;
    a group is a particle, or one element's sublattice of it. Neighbour indices are atom indices.
    """
    symbols = np.asarray(chemical_symbols)[atoms.numbers]
    idx = np.flatnonzero(analysed)
    if "object_id" in atoms.arrays:
        ids = np.asarray(atoms.arrays["object_id"])[idx]
        batches = [idx[ids == k] for k in np.unique(ids)]
    else:
        batches = [idx]
    groups = []
    for batch in batches:
        if not len(batch):
            continue
        found = _neighbours(atoms.positions[batch], periods, NEIGHBOURS)
        labels = (np.zeros(len(batch), dtype=int) if "object_id" in atoms.arrays
                  else _clusters(found, CUTOFF_PER_NN * _median_nn(found)))
        found = found._replace(index=_global(batch, found.index))
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            members = batch[rows]
            particle = len({g[0] for g in groups})
            elements = np.unique(symbols[members])
            part = _Neighbours(found.distance[rows], found.vector[rows], found.index[rows])
            split = len(elements) > 1 and (sublattices == "always"
                                           or (sublattices == "auto" and _needs_sublattices(part)))
            if not split:
                groups.append((particle, members, "", part))
                continue
            for element in elements:
                sub = members[symbols[members] == element]
                on_sub = _neighbours(atoms.positions[sub], periods, NEIGHBOURS)
                groups.append((particle, sub, str(element), on_sub._replace(index=_global(sub, on_sub.index))))
    return groups


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` as a slice when it is a run of consecutive integers, else itself."""
    if len(index) and index[-1] - index[0] + 1 == len(index) and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def classify_sites(order: dict[str, np.ndarray], coordination: np.ndarray, offset_nn: np.ndarray) -> np.ndarray:
    """Class codes (:data:`CLASSES`) from order parameters, coordination and neighbour offset.

    Parameters
    ----------
    order : dict of str to ndarray
        Eq. 2.1 order parameters per template (NaN where not fitted).
    coordination : ndarray of int
        Neighbours within the cut-off.
    offset_nn : ndarray of float
        Length of the mean neighbour vector, in nearest-neighbour distances.
    """
    n = len(coordination)
    names = [name for name in TEMPLATE_NAMES if name in order]
    scores = np.stack([np.nan_to_num(order[name], nan=-1.0) * 12 / template(name).size for name in names])
    best = np.argmax(scores, axis=0)
    top = scores[best, np.arange(n)]
    fcc = scores[names.index("fcc")]
    hcp = scores[names.index("hcp")]
    close = np.maximum(fcc, hcp)
    rhcp = (np.abs(fcc - hcp) < RHCP_MARGIN) & (np.minimum(fcc, hcp) >= RHCP_MIN_ORDER)
    codes = np.where(rhcp, CLASS_CODE["rhcp"],
                     np.where(fcc > hcp, CLASS_CODE["fcc"], CLASS_CODE["hcp"]))
    for i, name in enumerate(names):
        if name in ("fcc", "hcp"):
            continue
        wins = (best == i) & (top - close >= RHCP_MARGIN)
        codes = np.where(wins, CLASS_CODE[name], codes)
    codes = np.where(top < MIN_ORDER, CLASS_CODE["disordered"], codes)
    low = coordination < MIN_COORDINATION
    surface = offset_nn > SURFACE_OFFSET_NN
    codes = np.where(low, np.where(surface, CLASS_CODE["surface"], CLASS_CODE["disordered"]), codes)
    return codes.astype(np.int8)


def local_structure(atoms: Atoms, *, cutoff_A: float | None = None,
                    sublattices: Literal["auto", "always", "never"] = "auto") -> LocalStructure:
    """Coordination, Eq. 2.1 order parameters and class of every atom (seed 004, chapter 2).

    Parameters
    ----------
    atoms : ase.Atoms
        The model. With an ``is_particle`` array (nanofind scenes) only particle atoms are
        analysed; with ``object_id`` each object is analysed on its own.
    cutoff_A : float, optional
        Coordination cut-off, Å. Default: 1.28 × the median nearest-neighbour distance of each
        particle or sublattice (3.75 Å for Pd, as in the seed).
    sublattices : {"auto", "always", "never"}
        Analyse each element of a compound on its own sublattice: when the compound is not
        close-packed (``auto``), always, or never.

    Returns
    -------
    LocalStructure
    """
    n = len(atoms)
    if cutoff_A is not None and not cutoff_A > 0:
        raise NanofindInputError(f"must be > 0 Å, got {cutoff_A}", "cutoff_A")
    if sublattices not in ("auto", "always", "never"):
        raise NanofindInputError(f"must be auto, always or never, got {sublattices!r}", "sublattices")
    analysed = np.ones(n, dtype=bool)
    if "is_particle" in atoms.arrays:
        analysed = np.asarray(atoms.arrays["is_particle"], dtype=bool).copy()
    periods = cell_periods(atoms)
    particle = np.full(n, -1)
    coordination = np.full(n, -1)
    offset = np.zeros(n)
    group = np.full(n, -1)
    vectors = np.zeros((n, NEIGHBOURS, 3), dtype=np.float32)
    neighbours = np.full((n, NEIGHBOURS), -1, dtype=np.int32)  # MAX_ATOMS fits in int32
    distances = np.full((n, NEIGHBOURS), np.inf, dtype=np.float32)
    nn_distance, cutoffs, elements = [], [], []
    for g, (p, members, element, found) in enumerate(_groups(atoms, analysed, periods, sublattices)):
        d_nn = _median_nn(found)
        cutoff = float(cutoff_A) if cutoff_A is not None else CUTOFF_PER_NN * d_nn
        within = found.distance <= cutoff
        count = within.sum(axis=1)
        coordination[members] = count
        # (a batched 1 × 14 by 14 × 3 product: several times faster than einsum or a masked sum here)
        mean_vec = np.matmul(within[:, None, :].astype(np.float32), found.vector)[:, 0] / np.maximum(count, 1)[:, None]
        offset[members] = np.where(count > 0, np.linalg.norm(mean_vec, axis=1) / max(d_nn, 1e-9), 1.0)
        rows = _as_slice(members)  # slice copies run several times faster than index copies
        vectors[rows] = found.vector
        neighbours[rows] = found.index
        distances[rows] = found.distance
        group[members] = g
        particle[members] = p
        nn_distance.append(d_nn)
        cutoffs.append(cutoff)
        elements.append(element)
    fits = fit_templates(vectors, TEMPLATE_NAMES, sites=np.flatnonzero(coordination >= MIN_COORDINATION))
    order = {name: fit.order for name, fit in fits.items()}
    rotation = {name: fits[name].rotation for name in ORIENTED}
    structure = np.zeros(n, dtype=np.int8)
    structure[analysed] = classify_sites({k: v[analysed] for k, v in order.items()}, coordination[analysed],
                                         offset[analysed])
    return LocalStructure(coordination, order, rotation, structure, particle, group,
                          np.array(nn_distance), np.array(cutoffs), elements, neighbours, distances)
