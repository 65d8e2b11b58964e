"""Scenes: objects (a generator inside a volume, with a priority) resolved into one ``ase.Atoms``.

Overlaps are resolved by priority: objects are taken in order of increasing ``priority``
(ties keep the order they were added in). An object loses its atoms that fall inside the
volume of an object taken before it, and those closer to an earlier object's atoms than the
clearance for that element pair. Atoms outside the field of view laterally are cut, so a
particle on the edge of the field is cut by it. The scene is periodic in x and y.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols, covalent_radii

from nanofind.errors import NanofindInputError
from nanofind.scene.amorphous import pair_key
from nanofind.scene.crystal import GeneratedAtoms
from nanofind.scene.neighbours import pairs_within
from nanofind.scene.point_defects import add_vacancies, substitute
from nanofind.scene.volumes import Volume

#: Default smallest distance, Å, between an atom of a particle and a carbon atom of another object.
METAL_CARBON_CLEARANCE_A = 2.0


def default_clearance_A(z_a: int, z_b: int) -> float:
    """Smallest allowed distance in Å between atoms of two different objects.

    2.0 Å between carbon and any other element (a particle resting on carbon), otherwise 0.8 of
    the sum of covalent radii.
    """
    if (z_a == 6) != (z_b == 6):
        return METAL_CARBON_CLEARANCE_A
    return 0.8 * float(covalent_radii[z_a] + covalent_radii[z_b])


def clearance_matrix(numbers: Sequence[int], overrides: Mapping[str, float] | None = None) -> np.ndarray:
    """Clearance table in Å indexed by atomic number, filled for the elements in ``numbers``."""
    zs = sorted(set(int(z) for z in numbers))
    size = max(zs) + 1 if zs else 1
    mat = np.zeros((size, size))
    table = {pair_key(*k.split("-")): float(v) for k, v in (overrides or {}).items()}
    for a in zs:
        for b in zs:
            key = pair_key(chemical_symbols[a], chemical_symbols[b])
            mat[a, b] = table.get(key, default_clearance_A(a, b))
    return mat


def inside_field(positions: np.ndarray, field_A: Sequence[float]) -> np.ndarray:
    """Whether each position (N, 3), Å, lies inside the field of view ``[0, x) × [0, y)``."""
    p = np.asarray(positions)
    return (p[:, 0] >= 0) & (p[:, 0] < field_A[0]) & (p[:, 1] >= 0) & (p[:, 1] < field_A[1])


@dataclass
class SceneObject:
    """A generator inside a volume, with a priority (lower wins overlaps).

    Parameters
    ----------
    generator : object
        Anything with ``generate(volume, rng) -> GeneratedAtoms`` (crystal, amorphous,
        decahedron, icosahedron generators).
    volume : Volume
        Where atoms are kept, in the object's local frame, Å.
    priority : int
        Lower numbers win overlaps.
    name : str
        Shown in summaries.
    is_particle : bool
        Whether the atoms count as particle in the labels and masks.
    offset_A : ndarray of shape (3,)
        Translation of the local frame in the scene, Å.
    vacancy_fraction : float
        Fraction of atoms removed at random.
    substitution : mapping, optional
        ``{"element": "Ag", "fraction": 0.1, "host": None}``.
    seed : int
        Seed for the object's own randomness (amorphous packing, point defects).
    carves : bool
        Whether the volume removes atoms of lower-priority objects inside it. Particles placed
        by :mod:`nanofind.scene.placement` do not need to: the clearance alone keeps them apart,
        so the substrate under a resting particle stays intact.

    The atoms are generated on first use and kept; :meth:`from_generated` makes an object whose
    atoms already exist (one generated before, e.g. a substrate reused between scenes).
    """

    generator: Any
    volume: Volume
    priority: int = 0
    name: str = ""
    is_particle: bool = True
    offset_A: np.ndarray = field(default_factory=lambda: np.zeros(3))
    vacancy_fraction: float = 0.0
    substitution: Mapping[str, Any] | None = None
    seed: int = 0
    carves: bool = True
    _local: GeneratedAtoms | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_generated(cls, local_atoms: GeneratedAtoms, generator: Any, volume: Volume, **kwargs) -> SceneObject:
        """An object whose local-frame atoms are ``local_atoms``, as :meth:`local_atoms` of an equal object returned.

        ``local_atoms`` are used as they are: the generator is not run and point defects are not
        applied again. ``kwargs`` are the other fields (priority, name, seed, ...).
        """
        obj = cls(generator, volume, **kwargs)
        obj._local = local_atoms
        return obj

    def local_atoms(self) -> GeneratedAtoms:
        """Atoms in the local frame (generated once, then cached)."""
        if self._local is None:
            rng = np.random.default_rng(self.seed)
            atoms = self.generator.generate(self.volume, rng)
            if self.substitution:
                sub = dict(self.substitution)
                atoms = substitute(atoms, sub["element"], float(sub["fraction"]), rng, host=sub.get("host"))
            if self.vacancy_fraction:
                atoms = add_vacancies(atoms, self.vacancy_fraction, rng)
            self._local = atoms
        return self._local

    def atoms(self) -> GeneratedAtoms:
        """Atoms in the scene frame, Å."""
        local = self.local_atoms()
        return local._replace(positions=local.positions + self.offset_A)

    def translated(self, shift_A: Sequence[float]) -> SceneObject:
        """The same object moved by ``shift_A`` (Å); shares the generated atoms."""
        moved = replace(self, offset_A=self.offset_A + np.asarray(shift_A, dtype=float))
        moved._local = self.local_atoms()
        return moved

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether scene-frame points lie inside the object's volume."""
        return self.volume.contains(np.asarray(points) - self.offset_A)


@dataclass
class Scene:
    """A field of view holding objects.

    Parameters
    ----------
    cell_A : (float, float, float)
        Field of view (x, y) and height (z) of the simulation cell, Å. z grows if atoms reach
        above it.
    objects : list of SceneObject
        In the order added.
    clearance_A : mapping
        Overrides of the inter-object clearance per element pair, e.g. ``{"Au-C": 2.2}``.
    """

    cell_A: Sequence[float]
    objects: list[SceneObject] = field(default_factory=list)
    clearance_A: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        cell = np.asarray(self.cell_A, dtype=float)
        if cell.shape != (3,) or np.any(cell <= 0):
            raise NanofindInputError(f"cell must be three lengths > 0 Å, got {list(self.cell_A)}", "field")
        self.cell_A = cell

    def add(self, obj: SceneObject) -> SceneObject:
        """Append an object and return it."""
        self.objects.append(obj)
        return obj

    def build(self) -> Atoms:
        """Resolve overlaps and return the atoms with their label arrays."""
        lx, ly, _ = self.cell_A
        order = sorted(range(len(self.objects)), key=lambda k: self.objects[k].priority)
        kept: list[tuple[int, GeneratedAtoms]] = []
        for k in order:
            obj = self.objects[k]
            atoms = obj.atoms()
            p = atoms.positions
            ok = inside_field(p, (lx, ly))
            for k_prev, _ in kept:
                if self.objects[k_prev].carves:
                    ok &= ~self.objects[k_prev].contains(p)
            atoms = atoms.select(ok)
            if kept and len(atoms.numbers):
                prev = np.vstack([a.positions for _, a in kept])
                prev_z = np.concatenate([a.numbers for _, a in kept])
                cmat = clearance_matrix(np.concatenate([prev_z, atoms.numbers]), self.clearance_A)
                i, j, d = pairs_within(prev, float(cmat.max()), others=atoms.positions, lateral_period_A=(lx, ly))
                too_close = d < cmat[prev_z[i], atoms.numbers[j]]
                ok = np.ones(len(atoms.numbers), dtype=bool)
                ok[j[too_close]] = False
                atoms = atoms.select(ok)
            kept.append((k, atoms))
        return self._assemble(sorted(kept, key=lambda t: t[0]))

    def _assemble(self, kept: list[tuple[int, GeneratedAtoms]]) -> Atoms:
        numbers, positions, object_id, grain_id, is_particle, defect = [], [], [], [], [], []
        next_grain = 0
        for k, atoms in kept:
            obj = self.objects[k]
            n = len(atoms.numbers)
            numbers.append(atoms.numbers)
            positions.append(atoms.positions)
            object_id.append(np.full(n, k))
            if obj.is_particle:
                grain_id.append(np.where(atoms.grain >= 0, atoms.grain + next_grain, -1))
                next_grain += int(atoms.grain.max()) + 1 if n else 0
            else:
                grain_id.append(np.full(n, -1))
            is_particle.append(np.full(n, obj.is_particle))
            defect.append(atoms.defect)
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt))  # noqa: E731
        pos = cat(positions, float).reshape(-1, 3)
        cell = self.cell_A.copy()
        if len(pos):
            if pos[:, 2].min() < 0:
                raise NanofindInputError("atoms lie below z = 0; move the objects up", "field")
            cell[2] = max(cell[2], float(pos[:, 2].max()) + 2.0)
        result = Atoms(numbers=cat(numbers, int), positions=pos, cell=cell, pbc=(True, True, False))
        result.arrays["object_id"] = cat(object_id, np.int32)
        result.arrays["grain_id"] = cat(grain_id, np.int32)
        result.arrays["is_particle"] = cat(is_particle, bool)
        result.arrays["defect"] = cat(defect, np.int32)
        result.info["object_names"] = [o.name for o in self.objects]
        return result
