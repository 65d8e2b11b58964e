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
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from ase import Atoms

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


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NanofindInputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_extxyz(path: str | Path, atoms: Atoms) -> None:
    """Write atoms with label arrays and metadata to extended XYZ, atomically."""
    path = Path(path)
    out = atoms.copy()
    for key in _JSON_INFO:
        if key in out.info and not isinstance(out.info[key], str):
            out.info[key] = json.dumps(out.info[key], sort_keys=True)
    out.info.pop("object_names", None)
    out.info["object_names"] = json.dumps(atoms.info.get("object_names", []))
    from ase.io import write

    _atomic_write(path, lambda tmp: write(tmp, out, format="extxyz"))


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

    _atomic_write(path, write)


def write_cif(path: str | Path, atoms: Atoms) -> None:
    """Write a CIF file with ASE (positions and cell; label arrays are not part of CIF)."""
    from ase.io import write

    plain = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    _atomic_write(Path(path), lambda tmp: write(tmp, plain, format="cif"))
