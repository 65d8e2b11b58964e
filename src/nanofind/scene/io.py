"""Writing and reading scenes.

- extended XYZ (``.extxyz``, also ``.xyz``): positions, the label arrays of
  :mod:`nanofind.scene.labels`, the cell, and in the comment line the recipe, the concrete
  specification and the seed as JSON (``nanofind_recipe``, ``nanofind_spec``, ``nanofind_seed``).
- Prismatic XYZ (``.prismatic.xyz``): the input format of the Prismatic multislice code, one
  ``Z x y z occupancy sigma`` line per atom with the thermal RMS displacement ``sigma`` in Å.
- CIF via ASE (no label arrays).

Files are written to a temporary name in the target folder and renamed when complete, so an
interrupted write never leaves a partial file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from itertools import chain
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from nanofind._files import write_atomic
from nanofind.errors import NanofindInputError

#: RMS thermal displacement (Å) written to Prismatic files when none is given for an element.
DEFAULT_THERMAL_SIGMA_A = 0.08
_JSON_INFO = ("nanofind_recipe", "nanofind_spec")


def check_writable(path: str | Path) -> Path:
    """Raise a clear error now if ``path`` cannot be written, before any work is done."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise NanofindInputError(f"{path}: is a folder, expected a file name")
    if not parent.is_dir():
        raise NanofindInputError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise NanofindInputError(f"{path}: folder {parent} is not writable")
    return path


#: Rows formatted per string operation by the extended XYZ writer.
_EXTXYZ_CHUNK = 8192
#: The array kinds whose text the fast writer reproduces (float, int, bool, unicode).
_FAST_KINDS = frozenset("fibU")


def _extxyz_columns(atoms: Atoms) -> dict[str, np.ndarray] | None:
    """The columns ASE's extxyz writer would write, in its order, or None if not plain data.

    Mirrors :func:`ase.io.extxyz.write_xyz`: species, positions, then every other array in
    insertion order. Scenes with a calculator or constraints (which ASE turns into extra
    columns and info), and empty ones (whose species column ASE types as real), are left to ASE.
    """
    if not len(atoms) or atoms.calc is not None or atoms.constraints or "stress" in atoms.info:
        return None
    columns = {"symbols": np.array(chemical_symbols)[atoms.numbers], "positions": atoms.arrays["positions"]}
    for key, array in atoms.arrays.items():
        if key not in ("symbols", "positions", "numbers", "species", "pos"):
            columns[key] = array
    for array in columns.values():
        if array.dtype.kind not in _FAST_KINDS or array.ndim not in (1, 2) or len(array) != len(atoms):
            return None
    return columns


def _write_extxyz_text(path: Path, atoms: Atoms, info: dict) -> None:
    """Write the same characters as ``ase.io.write(path, atoms, format="extxyz")`` (with ``info``), faster.

    ASE formats one row per Python call; here one ``%`` operation formats a block of rows,
    with ASE's own header and row format, so the file is identical character for character.
    Anything but plain arrays falls back to ASE itself.
    """
    columns = _extxyz_columns(atoms)
    if columns is None:
        from ase.io import write

        out = atoms.copy()
        out.info = dict(info)
        write(path, out, format="extxyz")
        return
    from ase.io.extxyz import output_column_format

    header = Atoms(cell=atoms.cell, pbc=atoms.pbc, info=info)  # what ASE's comment line is made of
    comment, _, _, row = output_column_format(header, list(columns), columns, True)
    n = len(atoms)
    flat: list[list] = []  # one Python list per text column
    for array in columns.values():
        if array.ndim == 1:
            flat.append(array.tolist())
        else:
            flat.extend(array[:, c].tolist() for c in range(array.shape[1]))
    with open(path, "w") as fh:
        fh.write(f"{n}\n{comment}\n")
        for start in range(0, n, _EXTXYZ_CHUNK):
            block = [col[start:start + _EXTXYZ_CHUNK] for col in flat]
            fh.write((row * len(block[0])) % tuple(chain.from_iterable(zip(*block, strict=True))))


def write_extxyz(path: str | Path, atoms: Atoms) -> None:
    """Write atoms with label arrays and metadata to extended XYZ, atomically.

    The file is what ASE's extxyz writer writes for these atoms (JSON-encoded metadata in the
    comment line); see :func:`_write_extxyz_text`.
    """
    path = Path(path)
    info = dict(atoms.info)
    for key in _JSON_INFO:
        if key in info and not isinstance(info[key], str):
            info[key] = json.dumps(info[key], sort_keys=True)
    info.pop("object_names", None)
    info["object_names"] = json.dumps(atoms.info.get("object_names", []))
    write_atomic(path, lambda tmp: _write_extxyz_text(tmp, atoms, info))


def read_scene(path: str | Path) -> Atoms:
    """Read an extended XYZ scene written by :func:`write_extxyz`, decoding its JSON metadata."""
    from ase.io import read

    try:
        atoms = read(path, format="extxyz")
    except Exception as exc:  # ASE raises many types on malformed files
        raise NanofindInputError(f"{path}: not a readable extended XYZ file ({exc})") from None
    for key in (*_JSON_INFO, "object_names"):
        if isinstance(atoms.info.get(key), str):
            atoms.info[key] = json.loads(atoms.info[key])
    return atoms


def write_prismatic(path: str | Path, atoms: Atoms, thermal_sigma_A: Mapping[str, float] | None = None,
                    comment: str = "nanofind scene") -> None:
    """Write a Prismatic ``.xyz`` file (cell lengths in Å, then ``Z x y z occupancy sigma``, then -1)."""
    path = Path(path)
    sigma = dict(thermal_sigma_A or {})
    symbols = atoms.get_chemical_symbols()
    sig = np.array([sigma.get(s, DEFAULT_THERMAL_SIGMA_A) for s in symbols])
    a, b, c = atoms.cell.lengths()

    def write(tmp: Path) -> None:
        with open(tmp, "w") as fh:
            fh.write(comment.replace("\n", " ") + "\n")
            fh.write(f"    {a:.6f} {b:.6f} {c:.6f}\n")
            rows = np.column_stack([atoms.numbers, atoms.positions, np.ones(len(atoms)), sig])
            np.savetxt(fh, rows, fmt=["%d", "%.6f", "%.6f", "%.6f", "%.3f", "%.4f"])
            fh.write("-1\n")

    write_atomic(path, write)


def write_cif(path: str | Path, atoms: Atoms) -> None:
    """Write a CIF file with ASE (positions and cell; label arrays are not part of CIF)."""
    from ase.io import write

    plain = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    write_atomic(Path(path), lambda tmp: write(tmp, plain, format="cif"))
