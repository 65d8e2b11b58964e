"""Crystal unit cells: the material library, CIF loading, Miller indices and lattice symmetry.

Conventions
-----------
Cells follow ASE: ``cell[i]`` is the i-th lattice vector in Å (rows). A crystal direction
``[uvw]`` is ``uvw @ cell``; a plane ``(hkl)`` has the normal ``hkl @ inv(cell).T``.
Miller indices always refer to the unit cell as given, so the library uses conventional
cells (cubic for fcc, fluorite and zinc blende; hexagonal for wurtzite and hcp).
Hexagonal cells follow ASE's setting (a1 along x, a2 at 120°), the usual setting for
Miller–Bravais indices.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from nanofind.errors import NanofindInputError

#: Materials known by name. Each entry is keyword arguments for :func:`ase.build.bulk`.
#: Lattice constants in Å are room-temperature literature values.
MATERIALS: dict[str, dict] = {
    "Au": {"name": "Au", "crystalstructure": "fcc", "a": 4.078, "cubic": True},
    "Ag": {"name": "Ag", "crystalstructure": "fcc", "a": 4.086, "cubic": True},
    "Pt": {"name": "Pt", "crystalstructure": "fcc", "a": 3.924, "cubic": True},
    "Pd": {"name": "Pd", "crystalstructure": "fcc", "a": 3.891, "cubic": True},
    "Cu": {"name": "Cu", "crystalstructure": "fcc", "a": 3.615, "cubic": True},
    "Ni": {"name": "Ni", "crystalstructure": "fcc", "a": 3.524, "cubic": True},
    "Al": {"name": "Al", "crystalstructure": "fcc", "a": 4.050, "cubic": True},
    "CeO2": {"name": "CeO2", "crystalstructure": "fluorite", "a": 5.411, "cubic": True},
    "CdSe": {"name": "CdSe", "crystalstructure": "wurtzite", "a": 4.299, "c": 7.010, "u": 0.377},
    "CdSe-zb": {"name": "CdSe", "crystalstructure": "zincblende", "a": 6.077, "cubic": True},
    "ZnO": {"name": "ZnO", "crystalstructure": "wurtzite", "a": 3.250, "c": 5.207, "u": 0.382},
    "Si": {"name": "Si", "crystalstructure": "diamond", "a": 5.431, "cubic": True},
}


def load_unit_cell(material: str | Atoms | Mapping) -> Atoms:
    """Return the unit cell of a material.

    Parameters
    ----------
    material : str, ase.Atoms or mapping
        A name from :data:`MATERIALS`; an ``ase.Atoms`` unit cell (copied); a path to a
        ``.cif`` file; ``{"cif": path}``; or ``{"bulk": {...}}`` with keyword arguments for
        :func:`ase.build.bulk` (lengths in Å).

    Returns
    -------
    ase.Atoms
        Periodic unit cell, positions in Å.
    """
    if isinstance(material, Atoms):
        cell = material.copy()
    elif isinstance(material, str) and material in MATERIALS:
        cell = bulk(**MATERIALS[material])
    elif isinstance(material, str) and material.lower().endswith(".cif"):
        cell = _read_cif(material)
    elif isinstance(material, Mapping) and set(material) == {"cif"}:
        cell = _read_cif(str(material["cif"]))
    elif isinstance(material, Mapping) and set(material) == {"bulk"}:
        if not isinstance(material["bulk"], Mapping):
            raise NanofindInputError(f"bulk takes keyword arguments of ase.build.bulk, got {material['bulk']!r}",
                                     "material")
        try:
            cell = bulk(**dict(material["bulk"]))
        except Exception as exc:  # ASE raises several types for bad structure names
            raise NanofindInputError(f"ase.build.bulk rejected {dict(material['bulk'])}: {exc}",
                                     "material") from None
    else:
        known = ", ".join(MATERIALS)
        raise NanofindInputError(
            f"unknown material {material!r}; use one of {known}, a .cif path, or {{bulk: {{...}}}}",
            "material",
        )
    if cell.cell.rank != 3 or abs(cell.cell.volume) < 1e-6:
        raise NanofindInputError("the unit cell must have three independent lattice vectors", "material")
    cell.pbc = True
    return cell


def _read_cif(path: str) -> Atoms:
    from ase.io import read

    if not Path(path).is_file():
        raise NanofindInputError(f"CIF file not found: {path}", "material")
    try:
        return read(path, format="cif")
    except Exception as exc:  # parse errors come in many types
        raise NanofindInputError(f"cannot read CIF {path}: {exc}", "material") from None


def material_label(material: str | Atoms | Mapping) -> str:
    """Short human-readable name of a material specification."""
    if isinstance(material, str):
        return Path(material).stem if material.lower().endswith(".cif") else material
    if isinstance(material, Atoms):
        return material.get_chemical_formula()
    return load_unit_cell(material).get_chemical_formula()


def miller_bravais_to_miller(index: Sequence[int], kind: str) -> np.ndarray:
    """Convert four-index hexagonal notation to three indices.

    Parameters
    ----------
    index : sequence of 4 ints
        ``(hkil)`` for a plane or ``[UVTW]`` for a direction; ``i = -(h + k)`` and
        ``T = -(U + V)`` must hold.
    kind : {"plane", "direction"}
        What the index describes.

    Returns
    -------
    ndarray of shape (3,)
        ``(hkl)`` for planes, ``[uvw] = [2U + V, 2V + U, W]`` for directions.
    """
    h, k, i, l = (float(x) for x in index)  # noqa: E741 (crystallographic name)
    if abs(i + h + k) > 1e-9:
        shown = [int(x) if float(x).is_integer() else float(x) for x in index]
        raise NanofindInputError(f"four-index {shown} needs its third index = -(first + second)")
    if kind == "plane":
        return np.array([h, k, l])
    if kind == "direction":
        return np.array([2 * h + k, 2 * k + h, l])
    raise ValueError(f"kind must be 'plane' or 'direction', got {kind!r}")


def _three_index(index: Sequence[float], kind: str) -> np.ndarray:
    index = np.asarray(index, dtype=float)
    if index.shape == (4,):
        index = miller_bravais_to_miller(index, kind)
    if index.shape != (3,):
        raise NanofindInputError(f"a {kind} index needs 3 (or 4 hexagonal) components, got {index.tolist()}")
    if not np.any(index):
        raise NanofindInputError(f"a {kind} index cannot be zero, got {index.tolist()}")
    return index


def direction_vector(cell: np.ndarray, uvw: Sequence[float]) -> np.ndarray:
    """Cartesian vector in Å of the crystal direction ``[uvw]`` (or ``[UVTW]``) of ``cell``."""
    return _three_index(uvw, "direction") @ np.asarray(cell, dtype=float)


def plane_normal(cell: np.ndarray, hkl: Sequence[float]) -> np.ndarray:
    """Unit normal of the lattice plane ``(hkl)`` (or ``(hkil)``) of ``cell``."""
    g = _three_index(hkl, "plane") @ np.linalg.inv(np.asarray(cell, dtype=float)).T
    return g / np.linalg.norm(g)


def plane_spacing(cell: np.ndarray, hkl: Sequence[float]) -> float:
    """Interplanar spacing d_hkl in Å of the lattice planes ``(hkl)`` of ``cell``."""
    g = _three_index(hkl, "plane") @ np.linalg.inv(np.asarray(cell, dtype=float)).T
    return float(1.0 / np.linalg.norm(g))


@lru_cache(maxsize=64)
def _lattice_rotations_cached(cell_key: tuple) -> np.ndarray:
    cell = np.array(cell_key).reshape(3, 3)
    inv = np.linalg.inv(cell)
    mats = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=float).reshape(-1, 3, 3)
    # Row-vector convention: r' = r @ R with R = inv(cell) @ M @ cell for integer M.
    rots = np.einsum("ij,njk,kl->nil", inv, mats, cell)
    ortho = np.abs(np.einsum("nij,nkj->nik", rots, rots) - np.eye(3)).max(axis=(1, 2)) < 1e-6
    return rots[ortho]


def lattice_rotations(cell: np.ndarray) -> np.ndarray:
    """Point operations of the lattice (its holohedry) as Cartesian matrices.

    The returned matrices act on row vectors (``r @ R``) and map the Bravais lattice of
    ``cell`` onto itself: 48 for cubic, 24 for hexagonal cells.

    Parameters
    ----------
    cell : ndarray of shape (3, 3)
        Lattice vectors as rows, Å.

    Returns
    -------
    ndarray of shape (n, 3, 3)
    """
    key = tuple(np.round(np.asarray(cell, dtype=float), 9).ravel())
    return _lattice_rotations_cached(key)


def equivalent_plane_normals(cell: np.ndarray, hkl: Sequence[float]) -> np.ndarray:
    """Unit normals of all planes of the family ``{hkl}`` under the lattice's point operations."""
    normals = plane_normal(cell, hkl) @ lattice_rotations(cell)
    return _unique_rows(normals)


def _unique_rows(vectors: np.ndarray, decimals: int = 6) -> np.ndarray:
    _, idx = np.unique(np.round(vectors, decimals) + 0.0, axis=0, return_index=True)
    return vectors[np.sort(idx)]


def is_hexagonal(cell: np.ndarray) -> bool:
    """Whether ``cell`` is in the hexagonal setting (a = b, gamma = 120°)."""
    cell = np.asarray(cell, dtype=float)
    a, b = np.linalg.norm(cell[0]), np.linalg.norm(cell[1])
    gamma = np.degrees(np.arccos(cell[0] @ cell[1] / (a * b)))
    return bool(abs(a - b) < 1e-6 and abs(gamma - 120) < 1e-3)


def close_packed_plane(cell: np.ndarray) -> tuple[int, ...]:
    """The plane family where twins and stacking faults form by default: (0001) or {111}."""
    return (0, 0, 0, 1) if is_hexagonal(cell) else (1, 1, 1)


def nearest_neighbour_distance(unit_cell: Atoms) -> float:
    """Shortest interatomic distance in Å of the periodic crystal ``unit_cell``."""
    cell = np.asarray(unit_cell.cell)
    pos = unit_cell.positions
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3))) @ cell
    images = (pos[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    d = np.linalg.norm(pos[:, None, :] - images[None, :, :], axis=-1)
    return float(d[d > 1e-6].min())


def atomic_volume(unit_cell: Atoms) -> float:
    """Volume per atom in Å³."""
    return float(abs(unit_cell.cell.volume) / len(unit_cell))
