"""Point defects: vacancies and substitutional alloying at exact fractions."""

from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.scene.crystal import GeneratedAtoms
from nanofind.scene.labels import DefectFlag


def _count(fraction: float, n: int, field: str) -> int:
    if not 0 <= fraction < 1:
        raise NanofindInputError(f"fraction must be in [0, 1), got {fraction}", field)
    return int(round(fraction * n))


def add_vacancies(atoms: GeneratedAtoms, fraction: float, rng: np.random.Generator, *,
                  neighbour_distance_A: float = 3.2) -> GeneratedAtoms:
    """Remove ``round(fraction * N)`` randomly chosen atoms.

    Atoms that were within ``neighbour_distance_A`` of a removed atom get
    ``DefectFlag.VACANCY_NEIGHBOUR``.
    """
    n_remove = _count(fraction, len(atoms.numbers), "vacancy_fraction")
    if n_remove == 0:
        return atoms
    removed = rng.choice(len(atoms.numbers), size=n_remove, replace=False)
    keep = np.ones(len(atoms.numbers), dtype=bool)
    keep[removed] = False
    defect = atoms.defect.copy()
    hits = cKDTree(atoms.positions[removed]).query_ball_point(atoms.positions, neighbour_distance_A,
                                                             return_length=True)
    defect[hits > 0] |= int(DefectFlag.VACANCY_NEIGHBOUR)
    return atoms._replace(defect=defect).select(keep)


def substitute(atoms: GeneratedAtoms, element: str, fraction: float, rng: np.random.Generator, *,
               host: str | None = None) -> GeneratedAtoms:
    """Replace ``round(fraction * N_host)`` random host atoms by ``element``.

    ``host`` limits the replacement to one element (e.g. the cation of an oxide); by default
    every atom is eligible. Replaced atoms get ``DefectFlag.SUBSTITUTION``.
    """
    if element not in atomic_numbers:
        raise NanofindInputError(f"unknown element {element!r}", "substitution.element")
    eligible = np.arange(len(atoms.numbers))
    if host is not None:
        if host not in atomic_numbers:
            raise NanofindInputError(f"unknown element {host!r}", "substitution.host")
        eligible = eligible[atoms.numbers == atomic_numbers[host]]
    n_sub = _count(fraction, len(eligible), "substitution.fraction")
    if n_sub == 0:
        return atoms
    chosen = rng.choice(eligible, size=n_sub, replace=False)
    numbers, defect = atoms.numbers.copy(), atoms.defect.copy()
    numbers[chosen] = atomic_numbers[element]
    defect[chosen] |= int(DefectFlag.SUBSTITUTION)
    return atoms._replace(numbers=numbers, defect=defect)
