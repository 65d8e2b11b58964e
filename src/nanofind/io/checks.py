"""Checks every micrograph goes through: size limits, pixel values, pixel sizes and their units.

Sizes are checked from what a header *declares*, before any pixel is read or memory is allocated
for it (:func:`check_pixels`, :func:`check_extent`); the pixel values once read
(:func:`as_image`). Every refusal is a :class:`~nanofind.errors.NanofindInputError` whose field is
the file, so the command line prints one ``path: message`` line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError

#: Most pixels (frames × rows × columns) a file may declare: 2**31, i.e. 8 GiB once converted to
#: float32. Larger declarations are refused from the header, before any pixel is read.
MAX_PIXELS = 2**31
#: Smallest image side, pixels: smaller images hold too little to analyse (and than a network window).
MIN_SIDE_PX = 64

#: Length units found in micrograph metadata, in Å.
UNIT_TO_A = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "\\u00c5": 1.0, "nm": 10.0, "nanometer": 10.0, "um": 1e4,
             "\\u00b5m": 1e4, "µm": 1e4, "μm": 1e4, "micron": 1e4, "mm": 1e7, "cm": 1e8, "m": 1e10, "pm": 0.01,
             "ångström": 1.0, "angstroms": 1.0, "nanometers": 10.0, "nanometre": 10.0, "nanometres": 10.0,
             "micrometer": 1e4, "micrometers": 1e4, "micrometre": 1e4, "microns": 1e4, "meter": 1e10,
             "meters": 1e10, "metre": 1e10, "metres": 1e10, "picometer": 0.01, "picometre": 0.01}


def length_in_A(value: float, unit: str) -> float | None:
    """``value`` in ``unit`` converted to Å, or None for an unknown unit or a non-positive value."""
    factor = UNIT_TO_A.get(str(unit).strip().lower())
    if factor is None or not value or value <= 0 or not np.isfinite(value):
        return None
    return float(value) * factor


def check_pixel_size_override(pixel_size_A: float | None) -> None:
    """Refuse a given pixel size (Å) that is not positive; the field is ``--pixel-size``."""
    if pixel_size_A is not None and not pixel_size_A > 0:
        raise NanofindInputError(f"pixel size must be > 0 Å, got {pixel_size_A}", "--pixel-size")


# --- declared sizes -----------------------------------------------------------------------------------

#: The pixel limit of the read in progress (``read_micrograph``'s ``max_pixels``). A context variable,
#: so that reads in parallel threads each keep their own.
_PIXEL_LIMIT: ContextVar[int] = ContextVar("pixel_limit", default=MAX_PIXELS)


@contextmanager
def pixel_limit(limit: int) -> Iterator[None]:
    """Make :func:`check_pixels` refuse more than ``limit`` pixels inside the ``with`` block."""
    token = _PIXEL_LIMIT.set(limit)
    try:
        yield
    finally:
        _PIXEL_LIMIT.reset(token)


def check_pixels(path: Path, *, format_name: str, n_pixels: int, what: str) -> None:
    """Refuse a declared pixel count over the read's limit (``what``: what the header declares)."""
    limit = _PIXEL_LIMIT.get()
    if n_pixels > limit:
        why = ("nanofind reads (MAX_PIXELS)" if limit == MAX_PIXELS else
               "the memory limit allows (--max-memory)")
        raise NanofindInputError(f"{format_name} header declares {what} = {n_pixels:,} pixels, more than the "
                                 f"{limit:,} {why}; refused before reading", str(path))


def check_extent(path: Path, *, format_name: str, end_byte: int, size_bytes: int, what: str) -> None:
    """Refuse a file of ``size_bytes`` bytes shorter than the ``end_byte`` its header implies."""
    if end_byte > size_bytes:
        raise NanofindInputError(f"truncated {format_name} file: the header declares {what}, which needs "
                                 f"{end_byte:,} bytes, but the file holds {size_bytes:,}", str(path))


# --- pixel values -------------------------------------------------------------------------------------


def as_image(array: np.ndarray, path: Path, *, format_name: str, min_side_px: int = MIN_SIDE_PX) -> np.ndarray:
    """float32 (rows, columns) or (frames, rows, columns), RGB made grey, after the value checks.

    Leading axes of length one are dropped. Refused: other dimensionalities, complex or non-numeric
    pixels, a side under ``min_side_px`` (:data:`MIN_SIDE_PX` for micrographs), NaN or infinite values
    and a constant image or frame.
    """
    where = str(path)
    if array.dtype.names:
        if not {"R", "G", "B"} <= set(array.dtype.names):
            raise NanofindInputError(f"unsupported pixel type {array.dtype}", where)
        array = np.stack([array[c] for c in "RGB"], axis=-1)
    if array.ndim >= 3 and array.shape[-1] in (3, 4) and format_name != "MRC":  # MRC has no colour
        array = array[..., :3].mean(axis=-1)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in (2, 3):
        raise NanofindInputError(f"expected a 2D image or a stack of frames, got shape {array.shape}", where)
    if np.iscomplexobj(array):
        raise NanofindInputError("complex-valued data (an FFT or a wave function?), not a micrograph", where)
    if array.dtype.kind not in "biuf":
        raise NanofindInputError(f"unsupported pixel type {array.dtype}", where)
    rows, cols = array.shape[-2:]
    if min(rows, cols) < min_side_px:
        raise NanofindInputError(f"image is {rows}x{cols} pixels (rows x columns); nanofind needs at least "
                                 f"{min_side_px} pixels on each side", where)
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        raise NanofindInputError(f"image holds {int(finite.size - np.count_nonzero(finite)):,} NaN or "
                                 "infinite values", where)
    del finite  # as large as the image: free it before the next pass
    frames = array.reshape(-1, rows * cols)
    flat = np.flatnonzero(frames.min(axis=1) == frames.max(axis=1))
    if flat.size:
        if array.ndim == 2:
            raise NanofindInputError(f"constant image: nothing to analyse (every pixel is {array.flat[0]:g})", where)
        raise NanofindInputError(f"constant image: nothing to analyse (frame {int(flat[0])} of {len(frames)} "
                                 "has one value everywhere)", where)
    return array
