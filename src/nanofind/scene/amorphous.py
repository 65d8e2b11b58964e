"""Amorphous solids by vectorised random sequential addition (RSA).

The atom count is fixed from the target density before any atom is placed, so the density is
met exactly (to one atom), and every accepted atom is checked against every other with the
per-pair minimum distance, across the lateral periodic boundaries too. Candidates are
drawn in batches; each batch is tested against the accepted atoms with a k-d tree and
conflicts inside the batch are resolved by keeping the lower index.

RSA of hard spheres jams at a packing fraction of about 0.38; requests above
:data:`MAX_PACKING_FRACTION` are refused up front as impossible to pack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase.data import atomic_masses, atomic_numbers
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.scene.crystal import GeneratedAtoms

AVOGADRO = 6.02214076e23
#: Hard-sphere packing fraction above which RSA is refused (RSA jams at ~0.38).
MAX_PACKING_FRACTION = 0.30
MAX_ROUNDS = 400


def pair_key(a: str, b: str) -> str:
    """Canonical name of an element pair, ``"C-O"`` for both orders."""
    return "-".join(sorted((a, b)))


@dataclass(frozen=True)
class AmorphousGenerator:
    """Random amorphous solid of fixed density with guaranteed minimum distances.

    Parameters
    ----------
    composition : mapping
        Element symbol to relative amount, e.g. ``{"C": 1}`` or ``{"Si": 1, "O": 2}``.
    density_g_cm3 : float
        Target mass density, g/cm³.
    min_distance_A : float or mapping
        One distance for all pairs, or ``{"Si-O": 1.5, "O-O": 2.2, "Si-Si": 2.8}``; every pair
        of elements must be given.
    lateral_period_A : (float, float), optional
        Periods along x and y; with them the solid is periodic laterally, minimum distances
        included (the generated region must then span exactly one period laterally).
    """

    composition: Mapping[str, float] = field(default_factory=lambda: {"C": 1.0})
    density_g_cm3: float = 2.0
    min_distance_A: float | Mapping[str, float] = 1.3
    lateral_period_A: Sequence[float] | None = None

    def __post_init__(self):
        if not self.composition:
            raise NanofindInputError("composition must name at least one element", "composition")
        for el, amount in self.composition.items():
            if el not in atomic_numbers:
                raise NanofindInputError(f"unknown element {el!r}", "composition")
            if not amount > 0:
                raise NanofindInputError(f"amount of {el} must be > 0, got {amount}", "composition")
        if not self.density_g_cm3 > 0:
            raise NanofindInputError(f"must be > 0 g/cm³, got {self.density_g_cm3}", "density_g_cm3")
        self.distance_matrix()  # validates the pair table

    @property
    def elements(self) -> list[str]:
        """Element symbols in the order used by :meth:`distance_matrix`."""
        return list(self.composition)

    def distance_matrix(self) -> np.ndarray:
        """Minimum distances in Å as a symmetric matrix over :attr:`elements`."""
        els = self.elements
        n = len(els)
        if isinstance(self.min_distance_A, Mapping):
            table = {pair_key(*k.split("-")): float(v) for k, v in self.min_distance_A.items()}
            mat = np.zeros((n, n))
            for a in range(n):
                for b in range(n):
                    key = pair_key(els[a], els[b])
                    if key not in table:
                        raise NanofindInputError(f"no minimum distance given for pair {key}", "min_distance_A")
                    mat[a, b] = table[key]
        else:
            mat = np.full((n, n), float(self.min_distance_A))
        if np.any(mat <= 0):
            raise NanofindInputError(f"minimum distances must be > 0 Å, got {mat.min()}", "min_distance_A")
        return mat

    def mean_atomic_mass(self) -> float:
        """Composition-weighted mean atomic mass, g/mol."""
        w = np.array(list(self.composition.values()), dtype=float)
        m = np.array([atomic_masses[atomic_numbers[e]] for e in self.elements])
        return float(np.sum(w * m) / w.sum())

    def atom_count(self, volume_A3: float) -> int:
        """Number of atoms that gives the target density in ``volume_A3`` Å³."""
        return int(round(self.density_g_cm3 * volume_A3 * 1e-24 * AVOGADRO / self.mean_atomic_mass()))

    def species_counts(self, n_atoms: int) -> np.ndarray:
        """Exact counts per element summing to ``n_atoms`` (largest-remainder rounding)."""
        w = np.array(list(self.composition.values()), dtype=float)
        ideal = n_atoms * w / w.sum()
        counts = np.floor(ideal).astype(int)
        order = np.argsort(-(ideal - counts), kind="stable")
        counts[order[: n_atoms - counts.sum()]] += 1
        return counts

    def packing_fraction(self) -> float:
        """Hard-sphere packing fraction implied by the density and the minimum distances.

        The larger of two estimates: the whole solid with each element's smallest pair distance
        as its diameter, and each element alone with its like-pair distance.
        """
        w = np.array(list(self.composition.values()), dtype=float)
        x = w / w.sum()
        number_density = self.density_g_cm3 * 1e-24 * AVOGADRO / self.mean_atomic_mass()
        dmat = self.distance_matrix()
        whole = number_density * np.sum(x * np.pi / 6 * dmat.min(axis=1) ** 3)
        per_element = number_density * x * np.pi / 6 * np.diag(dmat) ** 3
        return float(max(whole, per_element.max()))

    def generate_box(self, lower_A: Sequence[float], upper_A: Sequence[float],
                     rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fill the box ``[lower_A, upper_A)`` to the target density.

        Returns
        -------
        positions : ndarray of shape (N, 3)
            Å.
        numbers : ndarray of shape (N,)
            Atomic numbers.
        """
        lo, hi = np.asarray(lower_A, float), np.asarray(upper_A, float)
        if np.any(hi <= lo):
            raise NanofindInputError(f"box {lo.tolist()}..{hi.tolist()} has no volume", "thickness_A")
        phi = self.packing_fraction()
        if phi > MAX_PACKING_FRACTION:
            raise NanofindInputError(
                f"density {self.density_g_cm3} g/cm³ cannot be packed at the minimum distance "
                f"(hard-sphere packing fraction {phi:.2f} > {MAX_PACKING_FRACTION}); lower the density or the distance",
                "density_g_cm3",
            )
        n_total = self.atom_count(float(np.prod(hi - lo)))
        return self._rsa(lo, hi, self.species_counts(n_total), np.random.default_rng(rng))

    def generate(self, volume, rng=None):
        """Atoms of the amorphous solid inside ``volume`` (Å).

        The bounding box of ``volume`` is filled to the exact density and atoms outside the
        volume are dropped, so the density is exact for boxes and slabs and exact on average
        for other shapes.

        Returns
        -------
        GeneratedAtoms
            With grain -1 and no defect flags.
        """
        lo, hi = volume.bounding_box()
        pos, numbers = self.generate_box(lo, hi, rng)
        keep = volume.contains(pos)
        n = int(keep.sum())
        return GeneratedAtoms(pos[keep], numbers[keep], np.full(n, -1), np.zeros(n, dtype=int))

    def _rsa(self, lo, hi, counts, rng):
        dmat = self.distance_matrix()
        dmax = float(dmat.max())
        one_distance = bool(np.allclose(dmat, dmax))
        size = hi - lo
        box = None
        if self.lateral_period_A is not None:
            if not np.allclose(size[:2], self.lateral_period_A):
                raise ValueError("a laterally periodic amorphous box must span one period in x and y")
            # periodic in x and y; z padded beyond the cut-off so nothing wraps along the beam
            box = np.array([size[0], size[1], size[2] + 2 * dmax + 1.0])
        remaining = counts.copy()
        pos = np.zeros((0, 3))
        spec = np.zeros(0, dtype=int)
        n_species = len(counts)
        # Rebuilding one tree over every placed atom each round dominated large fields, so placed
        # atoms live in a big tree rebuilt only when the atoms placed since outnumber it.
        indexed = 0
        big_tree = None
        for _ in range(MAX_ROUNDS):
            need = int(remaining.sum())
            if need == 0:
                break
            batch = max(need, 256)
            pool = np.repeat(np.arange(n_species), remaining)
            cand_spec = np.concatenate([rng.permutation(pool), rng.choice(pool, size=batch - need, replace=True)])
            cand = rng.uniform(0.0, size, size=(batch, 3))
            cand[cand >= size] = 0.0  # uniform() may round up to the upper bound
            ok = np.ones(batch, dtype=bool)
            if len(pos) - indexed > indexed:
                big_tree, indexed = cKDTree(pos, boxsize=box), len(pos)
            for start, tree in ((0, big_tree), (indexed, None)):
                if tree is None and len(pos) > start:
                    tree = cKDTree(pos[start:], boxsize=box)
                if tree is None:
                    continue
                if one_distance:
                    ok &= tree.query(cand, distance_upper_bound=dmax)[0] >= dmax
                else:
                    res = tree.sparse_distance_matrix(cKDTree(cand, boxsize=box), dmax, output_type="ndarray")
                    bad = res["v"] < dmat[spec[start + res["i"]], cand_spec[res["j"]]]
                    ok[res["j"][bad]] = False
            alive = np.flatnonzero(ok)
            pairs = cKDTree(cand[alive], boxsize=box).query_pairs(dmax, output_type="ndarray")
            if len(pairs) and not one_distance:
                delta = cand[alive[pairs[:, 0]]] - cand[alive[pairs[:, 1]]]
                if box is not None:
                    delta[:, :2] -= box[:2] * np.round(delta[:, :2] / box[:2])
                d = np.linalg.norm(delta, axis=1)
                pairs = pairs[d < dmat[cand_spec[alive[pairs[:, 0]]], cand_spec[alive[pairs[:, 1]]]]]
            # of each clashing pair keep the lower index (query_pairs gives i < j)
            ok[alive[pairs[:, 1]]] = False
            take = np.flatnonzero(ok)
            taken = np.zeros(n_species, dtype=int)
            keep = []
            for s_ in range(n_species):  # never exceed the exact per-element counts
                idx = take[cand_spec[take] == s_][: remaining[s_]]
                taken[s_] = len(idx)
                keep.append(idx)
            keep = np.sort(np.concatenate(keep))
            pos = np.vstack([pos, cand[keep]])
            spec = np.concatenate([spec, cand_spec[keep]])
            remaining -= taken
        if remaining.sum() > 0:
            raise NanofindInputError(
                f"could not place {int(remaining.sum())} of {int(counts.sum())} atoms at the minimum distance; "
                "lower the density or the minimum distance",
                "density_g_cm3",
            )
        numbers = np.array([atomic_numbers[e] for e in self.elements])[spec]
        return pos + lo, numbers
