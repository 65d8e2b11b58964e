"""``ParticleTable``: the analysis stage's per-particle results as typed columns.

One 1-D NumPy array per column, all of one length, in a fixed order. Units are in the column names
(``area_nm2``, ``equivalent_diameter_px``, ``orientation_deg``; see :mod:`nanofind.analyze.measure`).
A missing value is NaN in a float column and None in an object column; both come out as None in
:meth:`ParticleTable.rows` (JSON null) and as an empty cell in CSV. Later stages add their own
per-particle columns (a defect class and its probability, a column count) with
:meth:`ParticleTable.with_columns`; the CSV and the report show every column, so they need no change.

A table is immutable: every method returns a new table, and the arrays are read-only, so a table can be
shared between threads and handed between stages without copies.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nanofind._files import atomic_path
from nanofind.classify.classes import CLASS_NAMES

#: The measured columns, in the order of particles.csv, with their dtypes (see nanofind.analyze.measure).
PARTICLE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(kind) for name, kind in [
        ("particle_id", "int64"), ("area_px", "int64"), ("area_nm2", "float64"),
        ("equivalent_diameter_px", "float64"), ("equivalent_diameter_nm", "float64"),
        ("major_axis_px", "float64"), ("minor_axis_px", "float64"), ("major_axis_nm", "float64"),
        ("minor_axis_nm", "float64"), ("aspect_ratio", "float64"), ("orientation_deg", "float64"),
        ("circularity", "float64"), ("solidity", "float64"), ("centroid_x_px", "float64"),
        ("centroid_y_px", "float64"), ("centroid_x_nm", "float64"), ("centroid_y_nm", "float64"),
        ("mean_intensity", "float64"), ("std_intensity", "float64"), ("confidence", "float64"),
        ("touches_edge", "bool"), ("agglomerate", "bool"),
    ]
}
#: The defect class of a particle (``nanofind.classify``), the classifier's probability of it, and its
#: probability of each class (``p_fault`` … ``p_empty``, as in ``classes.csv``; the population fractions
#: are their sums); missing ("" and NaN) where an image is not classified (bright-field overview images).
DEFECT_DTYPES: dict[str, np.dtype] = {"defect_class": np.dtype(object), "defect_probability": np.dtype("float64"),
                                      **{f"p_{name}": np.dtype("float64") for name in CLASS_NAMES}}
#: Where a particle comes from in a batch: the file and the frame of a stack (None for a 2D image).
SOURCE_DTYPES: dict[str, np.dtype] = {"file": np.dtype(object), "frame": np.dtype(object)}
#: Dtypes of every column whose type is known whatever its values (all missing, say).
KNOWN_DTYPES: dict[str, np.dtype] = {**SOURCE_DTYPES, **PARTICLE_DTYPES, **DEFECT_DTYPES}

_OBJECT = np.dtype(object)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _infer_dtype(values: Sequence[Any]) -> np.dtype:
    """The dtype of a column of ``values``: bool or int64 when all are, float64 for numbers with gaps, else object."""
    present = [v for v in values if not _is_missing(v)]
    if not present:
        return np.dtype("float64")
    if all(isinstance(v, bool | np.bool_) for v in present):
        return np.dtype(bool) if len(present) == len(values) else _OBJECT
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in present):
        return np.dtype("int64") if len(present) == len(values) else _OBJECT  # as a float, 5 would print as 5.0
    if all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
           for v in present):
        return np.dtype("float64")
    return _OBJECT


def _column(values: Any, n: int | None, dtype: Any = None, name: str = "") -> np.ndarray:
    """A read-only 1-D column of ``n`` values (any length if None); a single value is repeated ``n`` times."""
    if np.ndim(values) == 0 and not isinstance(values, list | tuple | np.ndarray):
        if n is None:
            raise ValueError(f"column {name!r}: a single value needs a table of known length to repeat it in")
        values = [values] * n
    dtype = None if dtype is None else np.dtype(dtype)
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf" and (
            dtype is None or np.can_cast(values.dtype, dtype, "same_kind")):
        array = values.astype(dtype or values.dtype).reshape(-1)  # astype copies: the caller keeps its array
    else:
        values = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else list(values)
        dtype = _infer_dtype(values) if dtype is None else dtype
        if dtype.kind == "f":
            array = np.array([math.nan if _is_missing(v) else v for v in values], dtype)
        elif dtype == _OBJECT:
            array = np.empty(len(values), _OBJECT)
            array[:] = [None if _is_missing(v) else v for v in values]
        else:
            for v in values:
                if not _fits(v, dtype):
                    raise ValueError(f"column {name!r} of dtype {dtype} cannot hold {v!r}")
            array = np.array(values, dtype).reshape(-1)
    if n is not None and len(array) != n:
        raise ValueError(f"column {name!r} has {len(array)} values, the table {n} rows")
    array.flags.writeable = False
    return array


def _fits(value: Any, dtype: np.dtype) -> bool:
    """Whether an int or bool column holds ``value`` as it is (no missing value, no fraction cut off)."""
    if dtype.kind == "b":
        return isinstance(value, bool | np.bool_)
    if isinstance(value, bool | np.bool_) or _is_missing(value):
        return False
    return isinstance(value, int | np.integer) or (isinstance(value, float | np.floating) and float(value).is_integer())


def _typed_column(values: Any, n: int | None, name: str, dtypes: Mapping[str, Any]) -> np.ndarray:
    """A column of the dtype asked for in ``dtypes``, else of its known dtype when its values fit one, else inferred."""
    if name in dtypes:
        return _column(values, n, dtypes[name], name)
    if name in KNOWN_DTYPES:
        try:
            return _column(values, n, KNOWN_DTYPES[name], name)
        except (ValueError, TypeError):
            pass  # a hand-made or foreign table: keep its values as they are
    return _column(values, n, None, name)


def _python(value: Any) -> Any:
    """A cell as a plain Python value (JSON-able for numbers, bools and strings); missing is None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if _is_missing(value) else value


def _missing_column(dtype: np.dtype, n: int) -> np.ndarray:
    if dtype.kind == "f":
        return np.full(n, math.nan, dtype)
    return np.full(n, None, _OBJECT)  # ints and bools cannot hold a gap: the column becomes objects


class ParticleTable:
    """Particles as named, typed 1-D columns of equal length (see the module docstring).

    ``table["area_nm2"]`` is a column (read-only array); ``len(table)`` the number of particles;
    ``table[0]`` is the first row and iterating gives the rows, as dicts of plain Python values (as a NumPy
    record array gives fields by name and records by position).
    """

    __slots__ = ("_columns", "_n")

    def __init__(self, columns: Mapping[str, Any] | None = None, dtypes: Mapping[str, Any] | None = None):
        """Columns from name → values (arrays or lists, in table order; a single value is repeated).

        ``dtypes``: name → dtype for columns whose type is not to be inferred (known columns'
        dtypes, :data:`KNOWN_DTYPES`, are used otherwise).
        """
        columns = dict(columns or {})
        dtypes = dict(dtypes or {})
        lengths = {len(v) for v in columns.values() if isinstance(v, list | tuple | np.ndarray)}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths {sorted(lengths)}")
        if columns and not lengths:
            raise ValueError("a table needs at least one column of values (not only single values)")
        n = lengths.pop() if lengths else 0
        self._columns: dict[str, np.ndarray] = {
            str(name): _typed_column(values, n, str(name), dtypes) for name, values in columns.items()}
        self._n = n

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def empty(cls, columns: Mapping[str, Any] = PARTICLE_DTYPES) -> ParticleTable:
        """A table without rows with the given columns (name → dtype): by default the measured ones."""
        return cls({name: np.empty(0, dtype) for name, dtype in columns.items()})

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None,
                  dtypes: Mapping[str, Any] | None = None) -> ParticleTable:
        """A table from dicts (as :meth:`rows` gives, or read back from JSON); None is a missing value.

        Columns: ``columns`` if given, else every key in the order first met. A key missing from a
        row is a missing value there.
        """
        rows = list(rows)
        if columns is None:
            names: dict[str, None] = {}
            for row in rows:
                names.update(dict.fromkeys(row))
            columns = list(names)
        if not rows:
            known = {**KNOWN_DTYPES, **(dtypes or {})}
            return cls.empty({name: known.get(name, np.dtype("float64")) for name in columns})
        return cls({name: [row.get(name) for row in rows] for name in columns}, dtypes)

    from_records = from_rows

    @classmethod
    def concat(cls, tables: Iterable[ParticleTable]) -> ParticleTable:
        """The rows of every table, in order.

        Columns: all of them, in the order first met; a column that a table lacks is missing there (an
        int or bool column with gaps becomes an object column). No tables: the measured columns, no rows.
        """
        tables = [t if isinstance(t, ParticleTable) else cls.from_rows(t) for t in tables]
        if not tables:
            return cls.empty()
        names: dict[str, None] = {}
        for t in tables:
            names.update(dict.fromkeys(t._columns))
        out = {}
        for name in names:
            dtypes = {t._columns[name].dtype for t in tables if name in t._columns}
            gaps = any(name not in t._columns for t in tables)
            parts = [t._columns[name] if name in t._columns else _missing_column(next(iter(dtypes)), len(t))
                     for t in tables]
            if len(dtypes) > 1 or (gaps and next(iter(dtypes)).kind not in "fO"):
                parts = [p.astype(_OBJECT) for p in parts]
            out[name] = np.concatenate(parts)
        return cls._from_arrays(out, sum(len(t) for t in tables))

    # -- access ---------------------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(self._columns)

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        """Column name → dtype."""
        return {name: values.dtype for name, values in self._columns.items()}

    def __len__(self) -> int:
        return self._n

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __getitem__(self, name: str | int) -> Any:
        """The column ``name``; an integer picks a row instead (a dict, as :meth:`row` gives)."""
        if isinstance(name, int | np.integer) and not isinstance(name, bool):
            return self.row(int(name))
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r} in the particle table (columns: {', '.join(self._columns)})") from None

    def get(self, name: str, default: Any = None) -> Any:
        """The column ``name``, or ``default`` when the table has none."""
        return self._columns.get(name, default)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())

    def row(self, index: int) -> dict[str, Any]:
        """Row ``index`` (negative counts from the end) as a dict of plain Python values, missing ones None."""
        if not -self._n <= index < self._n:
            raise IndexError(f"row {index} of a table of {self._n} rows")
        return {name: _python(values[index]) for name, values in self._columns.items()}

    def rows(self) -> list[dict[str, Any]]:
        """One dict per particle with plain Python values, missing ones None (for CSV and JSON)."""
        lists = {name: [_python(v) for v in values.tolist()] if values.dtype.kind in "fO"
                 else values.tolist() for name, values in self._columns.items()}
        return [dict(zip(lists, cells, strict=True)) for cells in zip(*lists.values(), strict=True)] \
            if lists else [{} for _ in range(self._n)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParticleTable):
            return NotImplemented
        if self.columns != other.columns or len(self) != len(other):
            return False
        for name, a in self._columns.items():
            b = other._columns[name]
            if a.dtype != b.dtype:
                return False
            if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                return False
        return True

    __hash__ = None  # compared by value, like the arrays it holds

    def __repr__(self) -> str:
        return f"ParticleTable({self._n} particles; columns: {', '.join(self._columns)})"

    # -- new tables -----------------------------------------------------------------------------------

    def with_columns(self, columns: Mapping[str, Any] | None = None, /, *, dtypes: Mapping[str, Any] | None = None,
                     first: bool = False, **named: Any) -> ParticleTable:
        """A copy with columns added or replaced (a single value is repeated for every row).

        New columns go after the existing ones, or before them with ``first``; a replaced column keeps
        its place. ``dtypes``: name → dtype, else the dtype is inferred from the values.
        """
        extra = {**(columns or {}), **named}
        dtypes = dict(dtypes or {})
        new = {name: _typed_column(values, self._n, name, dtypes) for name, values in extra.items()}
        kept = {name: (new.pop(name) if name in new else values) for name, values in self._columns.items()}
        out = {**new, **kept} if first else {**kept, **new}
        return self._from_arrays(out, self._n)

    def add_column(self, name: str, values: Any, dtype: Any = None, *, first: bool = False) -> ParticleTable:
        """A copy with one more column (see :meth:`with_columns`); the table itself is unchanged."""
        return self.with_columns({name: values}, dtypes={name: dtype} if dtype is not None else None, first=first)

    def select(self, which: Any) -> ParticleTable:
        """The rows picked by a boolean mask (one value per row) or by integer indices, in that order."""
        which = np.asarray(which)
        if which.dtype == bool and which.shape != (self._n,):
            raise ValueError(f"a mask of {which.shape} values for a table of {self._n} rows")
        if which.dtype != bool:
            which = which.astype(np.intp).reshape(-1)
        out = {name: values[which] for name, values in self._columns.items()}
        n = int(which.sum()) if which.dtype == bool else len(which)
        return self._from_arrays({k: v.copy() for k, v in out.items()}, n)

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], n: int) -> ParticleTable:
        table = cls.__new__(cls)
        for values in arrays.values():
            values.flags.writeable = False
        table._columns, table._n = arrays, n
        return table

    # -- files ----------------------------------------------------------------------------------------

    def to_csv(self, path: str | Path, *, columns: Sequence[str] = (), leading: Mapping[str, Any] | None = None
               ) -> Path:
        """Write the table as CSV (atomically) and return the path.

        ``leading``: name → one value, written as the first columns of every row (the file and frame
        of a single image's table, say). ``columns``: the order of the columns that come next (a
        column the table lacks is empty); the table's other columns follow in table order. Missing
        values are empty cells; numbers are written as Python writes them.
        """
        leading = dict(leading or {})
        order = list(leading) + [c for c in columns if c not in leading]
        order += [c for c in self._columns if c not in order]
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(order)
            for row in self.rows():
                cells = {**row, **leading}
                writer.writerow(["" if cells.get(c) is None else cells[c] for c in order])
        return path


def as_table(particles: ParticleTable | Iterable[Mapping[str, Any]] | None) -> ParticleTable:
    """``particles`` as a table: a table as it is, a list of dicts through :meth:`ParticleTable.from_rows`."""
    if isinstance(particles, ParticleTable):
        return particles
    return ParticleTable.from_rows(particles or [])
