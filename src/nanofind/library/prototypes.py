"""Crystal prototypes for structure libraries: a built-in list of common structure types, and CIF files.

Every prototype is an ``ase.Atoms`` conventional cell (Å) built by :func:`ase.spacegroup.crystal` from
its space group and Wyckoff positions, with the representative materials and lattice constants of
:data:`BUILTIN_MATERIALS` (room-temperature values from the standard tables; a few tenths of a percent
do not matter at the pixel sizes of a micrograph). Zone axes are given in the indices of the
conventional cell (hexagonal cells in their four-index form, see :mod:`nanofind.library.zones`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from nanofind.errors import NanofindInputError


@dataclass(frozen=True)
class Prototype:
    """One crystal to put in a library.

    Attributes
    ----------
    prototype : str
        Structure-type name (``"fcc"``, ``"rutile"``…) or a CIF file's name.
    formula : str
        Chemical formula of the material (``"Au"``, ``"TiO2"``).
    atoms : ase.Atoms
        Conventional cell, Å, periodic in all three directions.
    spacegroup : int
        International space-group number; its point group merges equivalent zone axes.
    hexagonal : bool
        Hexagonal axes (a = b, γ = 120°): zones are written [U V T W].
    """

    prototype: str
    formula: str
    atoms: Atoms
    spacegroup: int
    hexagonal: bool


def _fcc(e, a):
    return dict(basis=[(0, 0, 0)], symbols=[e], spacegroup=225, cellpar=[a, a, a, 90, 90, 90])


def _bcc(e, a):
    return dict(basis=[(0, 0, 0)], symbols=[e], spacegroup=229, cellpar=[a, a, a, 90, 90, 90])


def _hcp(e, a, c):
    return dict(basis=[(1 / 3, 2 / 3, 1 / 4)], symbols=[e], spacegroup=194, cellpar=[a, a, c, 90, 90, 120])


def _diamond(e, a):
    return dict(basis=[(0, 0, 0)], symbols=[e], spacegroup=227, cellpar=[a, a, a, 90, 90, 90], setting=1)


def _zincblende(cation, anion, a):
    return dict(basis=[(0, 0, 0), (0.25, 0.25, 0.25)], symbols=[cation, anion], spacegroup=216,
                cellpar=[a, a, a, 90, 90, 90])


def _wurtzite(cation, anion, a, c, u=0.375):
    return dict(basis=[(1 / 3, 2 / 3, 0), (1 / 3, 2 / 3, u)], symbols=[cation, anion], spacegroup=186,
                cellpar=[a, a, c, 90, 90, 120])


def _rocksalt(cation, anion, a):
    return dict(basis=[(0, 0, 0), (0.5, 0.5, 0.5)], symbols=[cation, anion], spacegroup=225,
                cellpar=[a, a, a, 90, 90, 90])


def _cscl(a_el, b_el, a):
    return dict(basis=[(0, 0, 0), (0.5, 0.5, 0.5)], symbols=[a_el, b_el], spacegroup=221,
                cellpar=[a, a, a, 90, 90, 90])


def _fluorite(cation, anion, a):
    return dict(basis=[(0, 0, 0), (0.25, 0.25, 0.25)], symbols=[cation, anion], spacegroup=225,
                cellpar=[a, a, a, 90, 90, 90])


def _rutile(metal, a, c, u):
    return dict(basis=[(0, 0, 0), (u, u, 0)], symbols=[metal, "O"], spacegroup=136, cellpar=[a, a, c, 90, 90, 90])


def _anatase(metal, a, c, z):
    return dict(basis=[(0, 0, 0), (0, 0, z)], symbols=[metal, "O"], spacegroup=141, setting=1,
                cellpar=[a, a, c, 90, 90, 90])


def _perovskite(a_el, b_el, x_el, a):
    return dict(basis=[(0.5, 0.5, 0.5), (0, 0, 0), (0.5, 0, 0)], symbols=[a_el, b_el, x_el], spacegroup=221,
                cellpar=[a, a, a, 90, 90, 90])


def _spinel(a_el, b_el, a, x):
    # origin choice 2: A on 8a, B on 16d, O on 32e
    return dict(basis=[(1 / 8, 1 / 8, 1 / 8), (0.5, 0.5, 0.5), (x, x, x)], symbols=[a_el, b_el, "O"],
                spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90])


def _corundum(metal, a, c, z, x):
    return dict(basis=[(0, 0, z), (x, 0, 0.25)], symbols=[metal, "O"], spacegroup=167,
                cellpar=[a, a, c, 90, 90, 120])


#: Structure type -> [(formula, crystal() arguments)], lattice constants in Å.
BUILTIN_MATERIALS: dict[str, list[tuple[str, dict]]] = {
    "fcc": [(e, _fcc(e, a)) for e, a in [
        ("Al", 4.05), ("Ni", 3.52), ("Cu", 3.615), ("Pd", 3.89), ("Ag", 4.086), ("Pt", 3.924), ("Au", 4.078),
        ("Pb", 4.95), ("Ir", 3.839), ("Rh", 3.803), ("Ca", 5.58), ("Sr", 6.08)]],
    "bcc": [(e, _bcc(e, a)) for e, a in [
        ("Fe", 2.867), ("Cr", 2.91), ("Mo", 3.147), ("W", 3.165), ("V", 3.03), ("Nb", 3.30), ("Ta", 3.306),
        ("Li", 3.51), ("Na", 4.29), ("K", 5.33), ("Ba", 5.02)]],
    "hcp": [(e, _hcp(e, a, c)) for e, a, c in [
        ("Mg", 3.209, 5.211), ("Ti", 2.951, 4.686), ("Zn", 2.665, 4.947), ("Co", 2.507, 4.069),
        ("Zr", 3.232, 5.147), ("Cd", 2.979, 5.619), ("Ru", 2.706, 4.282), ("Re", 2.761, 4.456),
        ("Be", 2.286, 3.584), ("Y", 3.647, 5.731), ("Hf", 3.195, 5.051)]],
    "diamond": [(e, _diamond(e, a)) for e, a in [("C", 3.567), ("Si", 5.431), ("Ge", 5.658), ("Sn", 6.489)]],
    "zincblende": [(c + a_, _zincblende(c, a_, a)) for c, a_, a in [
        ("Ga", "As", 5.653), ("Ga", "P", 5.451), ("In", "P", 5.869), ("In", "As", 6.058), ("Zn", "S", 5.41),
        ("Zn", "Se", 5.668), ("Cd", "Te", 6.48), ("Cd", "Se", 6.05), ("Si", "C", 4.36), ("Al", "As", 5.661),
        ("Ga", "Sb", 6.096), ("In", "Sb", 6.479), ("B", "N", 3.615)]],
    "wurtzite": [(c + a_, _wurtzite(c, a_, a, cc, u)) for c, a_, a, cc, u in [
        ("Zn", "O", 3.250, 5.207, 0.382), ("Ga", "N", 3.189, 5.185, 0.377), ("Al", "N", 3.112, 4.982, 0.382),
        ("Cd", "Se", 4.30, 7.01, 0.376), ("Zn", "S", 3.82, 6.26, 0.375), ("Cd", "S", 4.136, 6.714, 0.377),
        ("In", "N", 3.545, 5.703, 0.377)]],
    "rocksalt": [(c + a_, _rocksalt(c, a_, a)) for c, a_, a in [
        ("Na", "Cl", 5.64), ("Mg", "O", 4.212), ("K", "Cl", 6.29), ("Li", "F", 4.03), ("Pb", "S", 5.936),
        ("Pb", "Te", 6.46), ("Ca", "O", 4.81), ("Ni", "O", 4.177), ("Ti", "N", 4.24), ("Fe", "O", 4.33),
        ("Ag", "Cl", 5.55), ("K", "Br", 6.60)]],
    "CsCl": [(c + a_, _cscl(c, a_, a)) for c, a_, a in [
        ("Cs", "Cl", 4.123), ("Cs", "Br", 4.286), ("Cs", "I", 4.567), ("Ni", "Al", 2.887), ("Cu", "Zn", 2.95),
        ("Fe", "Al", 2.91), ("Tl", "Br", 3.97)]],
    "fluorite": [(c + a_ + "2", _fluorite(c, a_, a)) for c, a_, a in [
        ("Ca", "F", 5.463), ("Ce", "O", 5.411), ("U", "O", 5.47), ("Zr", "O", 5.07), ("Th", "O", 5.597),
        ("Sr", "F", 5.80), ("Ba", "F", 6.20), ("Hf", "O", 5.08), ("Pb", "F", 5.94)]],
    "rutile": [(m + "O2", _rutile(m, a, c, u)) for m, a, c, u in [
        ("Ti", 4.594, 2.959, 0.305), ("Sn", 4.737, 3.186, 0.307), ("Mn", 4.40, 2.87, 0.302),
        ("Ru", 4.49, 3.11, 0.306), ("Ir", 4.50, 3.15, 0.308), ("Ge", 4.40, 2.86, 0.307), ("V", 4.55, 2.85, 0.30),
        ("Cr", 4.42, 2.92, 0.303)]],
    "anatase": [("TiO2", _anatase("Ti", 3.785, 9.514, 0.2083))],
    "perovskite": [(a_ + b + x + "3", _perovskite(a_, b, x, a)) for a_, b, x, a in [
        ("Sr", "Ti", "O", 3.905), ("Ba", "Ti", "O", 4.00), ("K", "Ta", "O", 3.989), ("Sr", "Zr", "O", 4.10),
        ("La", "Al", "O", 3.79), ("Cs", "Pb", "Br", 5.87), ("Cs", "Pb", "Cl", 5.61), ("Sr", "Ru", "O", 3.93),
        ("Ba", "Zr", "O", 4.19), ("Ca", "Ti", "O", 3.84), ("K", "Nb", "O", 4.02), ("La", "Mn", "O", 3.88)]],
    "spinel": [(f, _spinel(a_, b, a, x)) for f, a_, b, a, x in [
        ("MgAl2O4", "Mg", "Al", 8.08, 0.262), ("Fe3O4", "Fe", "Fe", 8.396, 0.2549),
        ("Co3O4", "Co", "Co", 8.08, 0.263), ("ZnFe2O4", "Zn", "Fe", 8.44, 0.260),
        ("NiFe2O4", "Ni", "Fe", 8.34, 0.257), ("MnFe2O4", "Mn", "Fe", 8.50, 0.258),
        ("CoFe2O4", "Co", "Fe", 8.39, 0.257), ("ZnAl2O4", "Zn", "Al", 8.09, 0.264),
        ("LiMn2O4", "Li", "Mn", 8.24, 0.263)]],
    "corundum": [(m + "2O3", _corundum(m, a, c, z, x)) for m, a, c, z, x in [
        ("Al", 4.759, 12.99, 0.3523, 0.3064), ("Fe", 5.035, 13.75, 0.3553, 0.3059),
        ("Cr", 4.959, 13.59, 0.3475, 0.3060), ("V", 4.95, 14.00, 0.3463, 0.3121),
        ("Ti", 5.15, 13.61, 0.3448, 0.3122), ("Ga", 4.98, 13.43, 0.3554, 0.3049)]],
}

#: The structure types of the built-in list.
BUILTIN_TYPES = tuple(BUILTIN_MATERIALS)


def _is_hexagonal(atoms: Atoms) -> bool:
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    return abs(a - b) < 1e-3 * a and abs(alpha - 90) < 0.01 and abs(beta - 90) < 0.01 and abs(gamma - 120) < 0.01


def builtin_prototypes(types=None, formulas=None) -> list[Prototype]:
    """The built-in prototypes, optionally only some structure types and formulas.

    Parameters
    ----------
    types : iterable of str, optional
        Structure types of :data:`BUILTIN_TYPES` (default all).
    formulas : iterable of str, optional
        Keep only these materials (default all of each type).
    """
    from ase.spacegroup import crystal

    types = BUILTIN_TYPES if types is None else tuple(types)
    unknown = [t for t in types if t not in BUILTIN_MATERIALS]
    if unknown:
        raise NanofindInputError(f"unknown structure type {unknown[0]!r}; built-in types: {', '.join(BUILTIN_TYPES)}",
                                 "prototypes")
    wanted = None if formulas is None else set(formulas)
    out = []
    for name in types:
        for formula, arguments in BUILTIN_MATERIALS[name]:
            if wanted is not None and formula not in wanted:
                continue
            atoms = crystal(**arguments, primitive_cell=False)
            out.append(Prototype(name, formula, atoms, int(arguments["spacegroup"]), _is_hexagonal(atoms)))
    return out


def cif_prototype(path: str | Path) -> Prototype:
    """A prototype from a CIF file: its name is the file's stem, its space group the CIF's (P1 if absent)."""
    from ase.io import read

    path = Path(path)
    try:
        atoms = read(path, format="cif")
    except FileNotFoundError:
        raise NanofindInputError("no such file", str(path)) from None
    except Exception as error:  # noqa: BLE001 - any parser failure is bad input
        raise NanofindInputError(f"not a readable CIF file ({type(error).__name__}: {error})", str(path)) from None
    spacegroup = atoms.info.get("spacegroup")
    number = int(getattr(spacegroup, "no", 1) or 1)
    if len(atoms) == 0 or not np.all(atoms.pbc) or atoms.cell.volume <= 0:
        raise NanofindInputError("the CIF holds no periodic crystal", str(path))
    return Prototype(path.stem, atoms.get_chemical_formula(mode="metal", empirical=True), atoms, number,
                     _is_hexagonal(atoms))


#: Space groups of ``ase.build.bulk``'s crystal structures (their point groups merge equivalent zones).
ASE_BULK_SPACEGROUPS = {"sc": 221, "fcc": 225, "bcc": 229, "hcp": 194, "diamond": 227, "zincblende": 216,
                        "rocksalt": 225, "cesiumchloride": 221, "fluorite": 225, "wurtzite": 186}


def ase_bulk_prototype(name: str, crystalstructure: str, a_A: float, c_A: float | None = None) -> Prototype:
    """A prototype built by ``ase.build.bulk(name, crystalstructure, a, c, cubic=...)``.

    Cubic structures are built in their conventional cubic cell (zones in its indices), hexagonal
    ones in the hexagonal cell. ``name`` is the formula (``"Cu"``, ``"GaAs"``); lengths in Å.
    """
    from ase.build import bulk

    if crystalstructure not in ASE_BULK_SPACEGROUPS:
        raise NanofindInputError(f"crystalstructure must be one of {', '.join(ASE_BULK_SPACEGROUPS)}, "
                                 f"got {crystalstructure!r}", "prototypes.ase_bulk")
    hexagonal = crystalstructure in ("hcp", "wurtzite")
    try:
        atoms = bulk(name, crystalstructure, a=a_A, c=c_A, cubic=not hexagonal)
    except (ValueError, KeyError, RuntimeError) as error:
        raise NanofindInputError(f"ase.build.bulk({name!r}, {crystalstructure!r}) failed: {error}",
                                 "prototypes.ase_bulk") from None
    return Prototype(crystalstructure, name, atoms, ASE_BULK_SPACEGROUPS[crystalstructure], _is_hexagonal(atoms))
