"""Structure libraries on disk (HDF5) and in memory.

Layout of ``LIBRARY.h5`` (format ``nanofind-structure-library``, version :data:`FORMAT_VERSION`):

- root attributes: ``format``, ``version``, ``renderer`` (haadf | hrtem), ``pixel_size_A``, ``spec``
  (the YAML spec as JSON), ``variants`` (JSON: the defoci in Å of HRTEM images; ``[null]`` for
  HAADF), ``nanofind_version``, ``created``;
- ``entries/``: one row per prototype × zone: ``prototype``, ``formula``, ``zone`` (strings),
  ``uvw`` (n, 3) in the conventional cell's indices, ``spacegroup``, ``hexagonal``, ``cell_A``
  (n, 2, 2) the projected cell (rows are vectors x, y in Å), ``repeat_A`` the period along the
  zone, ``column_start`` (n + 1) offsets into ``columns/``;
- ``columns/``: the peak sets: ``xy_A`` (m, 2) column positions in the cell, ``number`` (heaviest
  Z), ``atoms_per_A`` and ``weight_per_A`` (Σ Z^n per Å of thickness);
- ``images`` (n, variants, rows, cols) float16: each entry rendered in its canonical placement (x
  along the first cell vector, cell origin at the image centre);
- ``descriptors`` (n, variants, bins) float32: the shortlist descriptors of those images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.library.zones import Projection

FORMAT = "nanofind-structure-library"
FORMAT_VERSION = 1


@dataclass
class Library:
    """A structure library held in memory (see the module docstring for the fields)."""

    renderer: str
    pixel_size_A: float
    spec: dict
    variants: list
    prototype: np.ndarray
    formula: np.ndarray
    zone: np.ndarray
    uvw: np.ndarray
    spacegroup: np.ndarray
    hexagonal: np.ndarray
    cell_A: np.ndarray
    repeat_A: np.ndarray
    column_start: np.ndarray
    xy_A: np.ndarray
    number: np.ndarray
    atoms_per_A: np.ndarray
    weight_per_A: np.ndarray
    images: np.ndarray
    descriptors: np.ndarray
    source: str = ""
    #: coarse polar spectra of entries' images, filled by the shortlist as it needs them
    polar_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.prototype)

    def projection(self, index: int) -> Projection:
        """The projected cell and columns of entry ``index``."""
        a, b = self.column_start[index], self.column_start[index + 1]
        return Projection(self.cell_A[index], self.xy_A[a:b], self.number[a:b], self.atoms_per_A[a:b],
                          self.weight_per_A[a:b], float(self.repeat_A[index]),
                          float(self.spec.get("z_exponent", 1.7)))

    def label(self, index: int) -> str:
        """``"fcc Au [1 1 0]"``."""
        return f"{self.prototype[index]} {self.formula[index]} {self.zone[index]}"


def write_library(path: str | Path, entries: list[dict], *, renderer: str, pixel_size_A: float, spec: dict,
                  variants: list) -> None:
    """Write entries (dicts as made by :func:`nanofind.library.build.build_entries`) to ``path`` atomically."""
    import h5py

    from nanofind._version import __version__

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    strings = h5py.string_dtype()
    counts = [len(e["xy_A"]) for e in entries]
    with h5py.File(partial, "w") as f:
        f.attrs.update(format=FORMAT, version=FORMAT_VERSION, renderer=renderer, pixel_size_A=float(pixel_size_A),
                       spec=json.dumps(spec), variants=json.dumps(variants), nanofind_version=__version__,
                       created=datetime.now(UTC).isoformat(timespec="seconds"))
        g = f.create_group("entries")
        for key in ("prototype", "formula", "zone"):
            g.create_dataset(key, data=np.array([e[key] for e in entries], dtype=object), dtype=strings)
        g.create_dataset("uvw", data=np.array([e["uvw"] for e in entries], np.int32).reshape(-1, 3))
        g.create_dataset("spacegroup", data=np.array([e["spacegroup"] for e in entries], np.int32))
        g.create_dataset("hexagonal", data=np.array([e["hexagonal"] for e in entries], bool))
        g.create_dataset("cell_A", data=np.array([e["cell_A"] for e in entries], np.float64).reshape(-1, 2, 2))
        g.create_dataset("repeat_A", data=np.array([e["repeat_A"] for e in entries], np.float64))
        g.create_dataset("column_start", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        c = f.create_group("columns")
        for key, dtype in (("xy_A", np.float64), ("number", np.int32), ("atoms_per_A", np.float64),
                           ("weight_per_A", np.float64)):
            parts = [np.asarray(e[key], dtype) for e in entries]
            c.create_dataset(key, data=np.concatenate(parts) if parts else np.zeros((0, 2) if key == "xy_A" else 0))
        images = np.array([e["images"] for e in entries], np.float16)
        f.create_dataset("images", data=images, compression="gzip", shuffle=True,
                         chunks=(1,) + images.shape[1:] if len(entries) else None)
        f.create_dataset("descriptors", data=np.array([e["descriptors"] for e in entries], np.float32))
    partial.replace(path)


def read_library(path: str | Path) -> Library:
    """Read a library file; a missing, corrupt or other-version file is one clear error naming it."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise NanofindInputError("no such library file", str(path))
    try:
        with h5py.File(path, "r") as f:
            kind, version = f.attrs.get("format"), f.attrs.get("version")
            if kind != FORMAT:
                raise NanofindInputError(f"not a nanofind structure library (format {kind!r})", str(path))
            if int(version) != FORMAT_VERSION:
                raise NanofindInputError(f"library format version {int(version)}, this nanofind reads version "
                                         f"{FORMAT_VERSION}: rebuild it with `nanofind library build`", str(path))
            g, c = f["entries"], f["columns"]

            def text(key):
                return np.array([s.decode() if isinstance(s, bytes) else str(s) for s in g[key][()]], dtype=object)

            library = Library(
                renderer=str(f.attrs["renderer"]), pixel_size_A=float(f.attrs["pixel_size_A"]),
                spec=json.loads(f.attrs["spec"]), variants=json.loads(f.attrs["variants"]),
                prototype=text("prototype"), formula=text("formula"), zone=text("zone"), uvw=g["uvw"][()],
                spacegroup=g["spacegroup"][()], hexagonal=g["hexagonal"][()], cell_A=g["cell_A"][()],
                repeat_A=g["repeat_A"][()], column_start=g["column_start"][()], xy_A=c["xy_A"][()],
                number=c["number"][()], atoms_per_A=c["atoms_per_A"][()], weight_per_A=c["weight_per_A"][()],
                images=f["images"][()].astype(np.float32), descriptors=f["descriptors"][()], source=str(path))
    except NanofindInputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise NanofindInputError(f"corrupt or unreadable library file ({type(error).__name__}: {error})",
                                 str(path)) from None
    n = len(library.prototype)
    if n == 0:
        raise NanofindInputError("the library holds no entries", str(path))
    if library.images.shape[0] != n or library.descriptors.shape[0] != n or len(library.column_start) != n + 1:
        raise NanofindInputError("corrupt library file (its tables disagree in length)", str(path))
    return library
