"""Training datasets in HDF5: atomic part files while running, one consolidated file at the end.

While ``nanofind simulate`` runs, every finished scene group is written to its own part file in
``OUT.h5.parts/`` (written to a temporary name, then renamed, so a part is either complete or
absent). When all samples exist they are merged into ``OUT.h5`` the same way and the part
directory is removed. An interrupted run therefore loses at most the groups in flight, and
``--resume`` makes only the samples that are missing. The schema is in ``docs/dataset-format.md``.

Format version 2 adds the instance map and the per-particle records. Version-1 files still read:
their instance map is derived from the mask (connected components) and their records hold only
the footprint facts, marked ``"source": "mask"`` (see :mod:`nanofind.datasets.sample`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np

from nanofind._files import atomic_path
from nanofind._version import __version__
from nanofind.datasets.sample import COLUMN_FIELDS, Sample
from nanofind.errors import NanofindInputError

FORMAT_NAME = "nanofind-dataset"
FORMAT_VERSION = 2
#: Versions this code reads.
READABLE_VERSIONS = (1, 2)
_IMAGE_ARRAYS = {"image": np.float32, "mask": np.uint8, "grain": np.int16, "column_height": np.uint16,
                 "instance": np.int32}


def parts_dir(path: str | Path) -> Path:
    """Where a run keeps its finished scene groups before they are merged."""
    path = Path(path)
    return path.with_name(path.name + ".parts")


def _write_samples(h5: h5py.File, samples, header: dict) -> None:
    """Write samples in one pass (``samples`` may read lazily from disk)."""
    n = len(samples)
    for key, value in header.items():
        h5.attrs[key] = value
    h5.attrs["n_samples"] = n
    first = samples[0] if n else None
    shape = first.image.shape if n else (0, 0)
    arrays = {}
    for name, dtype in _IMAGE_ARRAYS.items():
        packed = name != "image"  # labels compress ~50x; float images barely, so keep them fast to read
        arrays[name] = h5.create_dataset(name, shape=(n, *shape), dtype=dtype, chunks=(1, *shape) if n else None,
                                         compression="gzip" if packed else None,
                                         compression_opts=1 if packed else None, shuffle=packed)
    index, params, particles, tables = [], [], [], []
    for k in range(n):
        s = first if k == 0 else samples[k]
        for name in _IMAGE_ARRAYS:
            arrays[name][k] = getattr(s, name)
        index.append(s.index)
        params.append(json.dumps(s.params))
        particles.append(json.dumps(s.particles))
        tables.append(np.asarray(s.columns, np.float32).reshape(-1, 4))
    h5.create_dataset("index", data=np.array(index, np.int64))
    h5.create_dataset("params", data=np.array(params, dtype=object), dtype=h5py.string_dtype())
    h5.create_dataset("particles", data=np.array(particles, dtype=object), dtype=h5py.string_dtype())
    counts = np.array([len(t) for t in tables], np.int64)
    h5.create_dataset("columns_offset", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    table = np.concatenate(tables) if tables else np.zeros((0, 4), np.float32)
    h5.create_dataset("columns", data=table)
    h5["columns"].attrs["fields"] = json.dumps(COLUMN_FIELDS)
    for name, unit in (("image", "detector counts"), ("mask", "1 = particle"), ("grain", "grain id, -1 = none"),
                       ("column_height", "particle atoms projecting within 0.6 A of the pixel centre"),
                       ("instance", "particle id (the 'id' of the particles records), 0 = none"),
                       ("particles", "JSON list of per-particle records"),
                       ("columns", "x_A, y_A from pixel (0, 0)'s outer corner; atoms; grain")):
        h5[name].attrs["units"] = unit


def write_samples_file(path: str | Path, samples, header: dict) -> Path:
    """Write ``samples`` (a sequence, possibly lazy) and the run ``header`` as one dataset file, atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        _write_samples(h5, samples, header)
    return Path(path)


def run_header(recipe_record: dict, recipe_source: str, seed: int, images_per_scene: int) -> dict:
    """File-level attributes that identify a run (a resume must match them)."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "nanofind_version": __version__,
            "seed": int(seed), "images_per_scene": int(images_per_scene),
            "recipe": json.dumps(recipe_record, sort_keys=True), "recipe_source": recipe_source}


def write_part(path: str | Path, group: int, samples: list[Sample], header: dict) -> Path:
    """Write one scene group's samples atomically into the run's part directory."""
    d = parts_dir(path)
    d.mkdir(parents=True, exist_ok=True)
    part = d / f"group-{group:08d}.h5"
    write_samples_file(part, samples, header)
    return part


def _check_header(found: dict, expected: dict, where: Path) -> None:
    version = int(found.get("format_version", 1))
    if version != int(expected["format_version"]):
        raise NanofindInputError(f"{where}: was written in dataset format version {version}, this nanofind writes "
                                 f"version {expected['format_version']}; cannot resume into it (finish it with the "
                                 "nanofind that started it, or start a new file)")
    for key in ("seed", "images_per_scene", "recipe"):
        if key in found and str(found[key]) != str(expected[key]):
            what = "recipe" if key == "recipe" else f"{key} ({found[key]} there, {expected[key]} now)"
            raise NanofindInputError(f"{where}: was made with a different {what}; cannot resume into it")


class DatasetReader:
    """Random access to a consolidated dataset file or to the parts of an unfinished run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._files: list[tuple[Path, int]] = []  # (file, row) per sample, ordered by index
        self._versions: dict[Path, int] = {}  # format version per file (parts of a run may differ)
        sources = []
        if self.path.is_file():
            sources.append(self.path)
        if parts_dir(self.path).is_dir():
            sources += sorted(parts_dir(self.path).glob("group-*.h5"))
        if not sources:
            raise NanofindInputError(f"{self.path}: no such dataset")
        rows: dict[int, tuple[Path, int]] = {}
        self.attrs: dict = {}
        for src in sources:
            try:
                with h5py.File(src, "r") as h5:
                    if h5.attrs.get("format") != FORMAT_NAME:
                        raise NanofindInputError(f"{src}: not a nanofind dataset")
                    version = int(h5.attrs.get("format_version", 1))
                    if version not in READABLE_VERSIONS:
                        raise NanofindInputError(f"{src}: dataset format version {version} is newer than this "
                                                 f"nanofind reads ({max(READABLE_VERSIONS)}); update nanofind")
                    self._versions[src] = version
                    if not self.attrs:
                        self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
                    for row, idx in enumerate(h5["index"][()]):
                        rows.setdefault(int(idx), (src, row))
            except OSError as exc:
                raise NanofindInputError(f"{src}: cannot read as HDF5 ({exc})") from None
        self.indices = np.array(sorted(rows), np.int64)
        self._files = [rows[i] for i in self.indices]
        self._handles: dict[Path, h5py.File] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def _h5(self, path: Path) -> h5py.File:
        if path not in self._handles:
            self._handles[path] = h5py.File(path, "r")
        return self._handles[path]

    def close(self) -> None:
        """Close open files."""
        for h in self._handles.values():
            h.close()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        # worker processes of a DataLoader reopen the files themselves
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def params(self, k: int) -> dict:
        """The parameter record of the k-th sample, without reading its images."""
        path, row = self._files[k]
        return json.loads(self._h5(path)["params"][row])

    def mask(self, k: int) -> np.ndarray:
        """The particle mask of the k-th sample."""
        path, row = self._files[k]
        return self._h5(path)["mask"][row]

    def format_version(self, k: int) -> int:
        """Format version of the file that holds the k-th sample."""
        return self._versions[self._files[k][0]]

    def instance(self, k: int) -> np.ndarray:
        """The instance map of the k-th sample (derived from the mask in version-1 files)."""
        path, row = self._files[k]
        h5 = self._h5(path)
        if "instance" in h5:
            return h5["instance"][row]
        from nanofind.datasets.sample import instances_from_mask

        return instances_from_mask(h5["mask"][row])

    def particles(self, k: int) -> list[dict]:
        """The per-particle records of the k-th sample (footprint facts only in version-1 files)."""
        path, row = self._files[k]
        h5 = self._h5(path)
        if "particles" in h5:
            return json.loads(h5["particles"][row])
        return self.sample(k).particles

    def sample(self, k: int) -> Sample:
        """The k-th sample in index order."""
        path, row = self._files[k]
        h5 = self._h5(path)
        off = h5["columns_offset"]
        v2 = "instance" in h5 and "particles" in h5  # version 1 has neither: Sample derives them from the mask
        return Sample(index=int(h5["index"][row]), image=h5["image"][row], mask=h5["mask"][row],
                      grain=h5["grain"][row], column_height=h5["column_height"][row],
                      columns=h5["columns"][off[row]:off[row + 1]], params=json.loads(h5["params"][row]),
                      instance=h5["instance"][row] if v2 else None,
                      particles=json.loads(h5["particles"][row]) if v2 else None)

    def __iter__(self) -> Iterator[Sample]:
        for k in range(len(self)):
            yield self.sample(k)


def existing_indices(path: str | Path, header: dict) -> set[int]:
    """Indices already written for ``path`` (consolidated file and parts), checked against the run."""
    path = Path(path)
    if not path.exists() and not parts_dir(path).exists():
        return set()
    reader = DatasetReader(path)
    _check_header(reader.attrs, header, path)
    return set(int(i) for i in reader.indices)


def consolidate(path: str | Path, n: int, header: dict) -> Path:
    """Merge what exists for ``path`` into one file with samples 0…n−1, then drop the parts."""
    path = Path(path)
    with DatasetReader(path) as reader:
        wanted = [k for k, i in enumerate(reader.indices) if i < n]
        if len(wanted) != n or list(reader.indices[wanted]) != list(range(n)):
            raise RuntimeError(f"{path}: cannot consolidate, {len(wanted)} of {n} samples exist")
        write_samples_file(path, _LazySamples(reader, wanted), header)
    shutil.rmtree(parts_dir(path), ignore_errors=True)
    return path


class _LazySamples:
    """Samples read on demand, so merging never holds the whole dataset in memory."""

    def __init__(self, reader: DatasetReader, rows: Iterable[int]):
        self._reader, self._rows = reader, list(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, k: int) -> Sample:
        return self._reader.sample(self._rows[k])
