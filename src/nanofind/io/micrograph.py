"""Micrographs: one object for an image, its pixel size and where it came from.

Arrays are float32 with rows along y (``array[row, column]``). The pixel size is in Å and is
``None`` when the file does not record it. Reading never unpickles anything.

Formats
-------
MRC (``.mrc``, ``.mrcs``; mrcfile), TIFF (``.tif``, ``.tiff``; tifffile), PNG and JPEG (Pillow),
and through RosettaSciIO (``rsciio``): Gatan DigitalMicrograph ``.dm3``/``.dm4``, FEI/Thermo Fisher
TIA ``.ser`` (with its ``.emi`` companion for the microscope settings) and ``.emd`` (Velox and
Berkeley/NCEM variants), in :mod:`nanofind.io.vendor_formats`.

A file that holds several signals (an EMD file with HAADF and DF images, a DM file with a
thumbnail, an EMI file with several ``.ser`` files) gives its *first* 2D image or image stack, in
the order the reader lists them; signals whose two last axes are calibrated in a length unit come
before uncalibrated ones (diffraction patterns, spectra). Which one was taken is recorded in
``metadata["signal_index"]`` out of ``metadata["signals"]``. The orientation of EMD data is the one
RosettaSciIO gives; for a 3D stack the one axis without a length unit is moved first (frames).

TIFF pixels are always read with tifffile (with imagecodecs for JPEG, LZW, Deflate, ZSTD and the other
compressions vendor software writes). The pixel size comes from, in order: vendor metadata read
through RosettaSciIO's TIFF reader (``rsciio.tiff.file_reader``, lazily, so tags only), consulted
only for files that carry such tags (FEI/Thermo Fisher, Zeiss SEM, TVIPS, Olympus SIS, JEOL SightX,
DigitalMicrograph export); the ImageJ ``unit`` with the resolution tags; the resolution tags when
they are in pixels per centimetre. Inch-based resolutions (72 dpi...) are never taken as a pixel
size. ``metadata["pixel_size_source"]`` names the source; see :mod:`nanofind.io.tiff_metadata`.

Checks
------
Every problem raises :class:`~nanofind.errors.NanofindInputError` with the file as its field, so the
command line prints one ``path: message`` line: missing file, directory, permission denied,
unsupported suffix, empty file, a file whose first bytes are not those of its format, a header that
declares more than :data:`MAX_PIXELS` pixels or more data than the file holds (checked from the
header, before the pixels are read or memory is allocated for them), truncated or corrupt data,
non-finite pixels, a constant image and an image smaller than :data:`MIN_SIDE_PX` on a side.
"""

from __future__ import annotations

import json
import logging
import math
import stat
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError

#: Length units found in micrograph metadata, in Å.
UNIT_TO_A = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "\\u00c5": 1.0, "nm": 10.0, "nanometer": 10.0, "um": 1e4,
             "\\u00b5m": 1e4, "µm": 1e4, "μm": 1e4, "micron": 1e4, "mm": 1e7, "cm": 1e8, "m": 1e10, "pm": 0.01,
             "ångström": 1.0, "angstroms": 1.0, "nanometers": 10.0, "nanometre": 10.0, "nanometres": 10.0,
             "micrometer": 1e4, "micrometers": 1e4, "micrometre": 1e4, "microns": 1e4, "meter": 1e10,
             "meters": 1e10, "metre": 1e10, "metres": 1e10, "picometer": 0.01, "picometre": 0.01}
#: Format names by file name ending.
FORMATS = {".mrc": "MRC", ".mrcs": "MRC", ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG",
           ".jpeg": "JPEG", ".dm3": "DM3", ".dm4": "DM4", ".ser": "SER", ".emi": "EMI", ".emd": "EMD"}
#: File name endings of micrographs, to pick them from a folder. :func:`read_micrograph` also reads
#: ``.emi`` files, left out here because each only describes the ``<name>_<n>.ser`` files next to it,
#: which hold the images (a folder scan would otherwise read them twice).
SUFFIXES = tuple(s for s in FORMATS if s != ".emi")
#: Most pixels (frames × rows × columns) a file may declare: 2**31, i.e. 8 GiB once converted to
#: float32. Larger declarations are refused from the header, before any pixel is read.
MAX_PIXELS = 2**31
#: Smallest image side, pixels: smaller images hold too little to analyse (and than a network window).
MIN_SIDE_PX = 64

_MRC_HEADER = 1024
#: Bytes per voxel of the MRC modes (101: 4-bit, two voxels a byte).
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2, 101: 0.5}
_SIGNATURES = {"PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",),
               "TIFF": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), "EMD": (b"\x89HDF\r\n\x1a\n",),
               "SER": (b"II\x97\x01",)}
#: Bytes per pixel of the TIA data type codes.
_SER_BYTES = {1: 1, 2: 2, 3: 4, 4: 1, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 16}
_SER_ELEMENT_HEADER = 50


@dataclass
class Micrograph:
    """A 2D image (or a stack of frames) with its pixel size.

    Attributes
    ----------
    array : numpy.ndarray
        float32, (rows, columns) or (frames, rows, columns).
    pixel_size_A : float or None
        Pixel size in Å, ``None`` when unknown.
    metadata : dict
        What the file recorded (JSON-able).
    source : Path or None
        The file it was read from.
    """

    array: np.ndarray
    pixel_size_A: float | None = None
    metadata: dict = field(default_factory=dict)
    source: Path | None = None

    @property
    def name(self) -> str:
        """File stem, with ``_frame<NNN>`` for a frame of a stack; used to name outputs."""
        stem = self.source.stem if self.source is not None else "micrograph"
        frame = self.metadata.get("frame")
        return stem if frame is None else f"{stem}_frame{frame:03d}"

    def frames(self) -> list[Micrograph]:
        """The 2D frames: the image itself when 2D or a stack of one; numbered (``metadata["frame"]``) otherwise."""
        if self.array.ndim == 2:
            return [self]
        if len(self.array) == 1:
            return [Micrograph(self.array[0], self.pixel_size_A, self.metadata, self.source)]
        return [Micrograph(a, self.pixel_size_A, {**self.metadata, "frame": k}, self.source)
                for k, a in enumerate(self.array)]


def array_and_pixel_size(image, pixel_size_A: float | None = None) -> tuple[np.ndarray, float | None]:
    """The array and pixel size (Å) of a ``Micrograph`` or of a plain array; a given ``pixel_size_A`` wins."""
    if isinstance(image, Micrograph):
        return image.array, image.pixel_size_A if pixel_size_A is None else pixel_size_A
    return image, pixel_size_A


def length_in_A(value: float, unit: str) -> float | None:
    """``value`` in ``unit`` converted to Å, or None for an unknown unit or a non-positive value."""
    factor = UNIT_TO_A.get(str(unit).strip().lower())
    if factor is None or not value or value <= 0 or not np.isfinite(value):
        return None
    return float(value) * factor


def read_micrograph(path: str | Path, pixel_size_A: float | None = None, max_pixels: int | None = None) -> Micrograph:
    """Read a micrograph file.

    Parameters
    ----------
    path : str or Path
        MRC (voxel size taken as the pixel size), TIFF (8/16/32-bit, uncompressed or compressed;
        pixel size from FEI/Thermo Fisher, Zeiss, TVIPS, Olympus SIS, JEOL SightX or
        DigitalMicrograph tags through RosettaSciIO, else from ImageJ metadata or centimetre-based
        resolution tags, never from a dpi), PNG or JPEG (pixel size unknown), DM3/DM4, TIA SER/EMI
        or EMD (pixel size from the axes' calibration). RGB images are converted to grey. See the
        module docstring for files with several signals.
    pixel_size_A : float, optional
        Overrides whatever the file says, Å.
    max_pixels : int, optional
        Refuse files that declare more pixels (all frames) than this, before reading them; at most
        :data:`MAX_PIXELS`. The commands pass what their memory limit allows
        (:func:`nanofind.learn.scale_guard.max_image_pixels`).

    Returns
    -------
    Micrograph
        float32 (rows, columns) or (frames, rows, columns), each side at least :data:`MIN_SIDE_PX`.

    Raises
    ------
    NanofindInputError
        Missing, unreadable, unsupported, empty, truncated or corrupt file, one that declares more
        than :data:`MAX_PIXELS` pixels, or an image that is too small, constant or holds NaN or
        infinite values; the file is the error's field (``--pixel-size`` for a bad override).
    """
    path = Path(path)
    if pixel_size_A is not None and not pixel_size_A > 0:
        raise NanofindInputError(f"pixel size must be > 0 Å, got {pixel_size_A}", "--pixel-size")
    size, head = _open_checks(path)
    fmt = FORMATS[path.suffix.lower()]
    reader = {"MRC": _read_mrc, "TIFF": _read_tiff, "PNG": _read_pillow, "JPEG": _read_pillow}.get(fmt)
    try:
        if reader is None:  # DM, SER/EMI, EMD
            import rsciio  # noqa: F401  (its import sets its log level: do it before _quiet)

            from nanofind.io.vendor_formats import _read_rsciio as reader
        elif reader is _read_tiff:  # vendor TIFFs are calibrated through RosettaSciIO, when it is installed
            with suppress(ImportError):
                import rsciio  # noqa: F401
        with _quiet(), _pixel_limit(MAX_PIXELS if max_pixels is None else min(max_pixels, MAX_PIXELS)):
            array, pixel, meta = reader(path, size, head, fmt)
    except NanofindInputError:
        raise
    except MemoryError:
        raise NanofindInputError(f"not enough memory to read this {fmt} file", str(path)) from None
    except ModuleNotFoundError as exc:  # rosettasciio itself, or an optional package a reader needs
        package = {"rsciio": "rosettasciio"}.get(exc.name or "", exc.name)
        need = f"the Python package {package} (pip install {package})" if package else _describe(exc, path)
        raise NanofindInputError(f"reading this {fmt} file needs {need}", str(path)) from None
    except (struct.error, EOFError) as exc:  # a parser ran out of bytes
        raise NanofindInputError(f"truncated or corrupt {fmt} file: it ends before the structure it describes "
                                 f"({_describe(exc, path)})", str(path)) from None
    except Exception as exc:  # whatever a library raises on a damaged file: name the file, no traceback
        raise NanofindInputError(f"cannot read: not a valid {fmt} file, or a truncated or corrupt one "
                                 f"({_describe(exc, path)})", str(path)) from None
    array = _as_image(np.asarray(array) if not isinstance(array, np.ndarray) else array, path, fmt)
    if pixel_size_A is not None:
        pixel = float(pixel_size_A)
        meta["pixel_size_source"] = "given (overrides the file's)"
    return Micrograph(array, pixel, meta, path)


# --- checks shared by all formats ---------------------------------------------------------------


def _open_checks(path: Path) -> tuple[int, bytes]:
    """Size and first 1024 bytes of ``path`` after the checks every file goes through."""
    where = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NanofindInputError("no such file", where) from None
    except PermissionError:
        raise NanofindInputError("permission denied", where) from None
    except OSError as exc:
        raise NanofindInputError(f"cannot access ({exc.strerror or exc})", where) from None
    if stat.S_ISDIR(st.st_mode):
        raise NanofindInputError("is a directory, not a micrograph file", where)
    if not stat.S_ISREG(st.st_mode):
        raise NanofindInputError("not a regular file", where)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise NanofindInputError(f"unsupported format {suffix or '(none)'}; nanofind reads "
                                 + ", ".join(FORMATS), where)
    try:
        with path.open("rb") as f:
            head = f.read(_MRC_HEADER)
    except PermissionError:
        raise NanofindInputError("permission denied", where) from None
    except OSError as exc:
        raise NanofindInputError(f"cannot open ({exc.strerror or exc})", where) from None
    if st.st_size == 0 or not head:
        raise NanofindInputError("empty file (0 bytes)", where)
    return st.st_size, head


def _not_valid(path: Path, fmt: str, why: str, head: bytes = b"") -> NanofindInputError:
    if head and _looks_like_text(head):
        why += "; it looks like a text file"
    return NanofindInputError(f"not a valid {fmt} file ({why})", str(path))


def _looks_like_text(head: bytes) -> bool:
    sample = head[:512]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _check_signature(path: Path, fmt: str, head: bytes) -> None:
    if head.startswith(_SIGNATURES[fmt]):
        return
    for other, signatures in _SIGNATURES.items():
        if other != fmt and head.startswith(signatures):
            raise _not_valid(path, fmt, f"it is a {other} file with a {path.suffix} name")
    raise _not_valid(path, fmt, f"it does not start with the {fmt} signature", head)


#: The pixel limit of the read in progress (``read_micrograph``'s ``max_pixels``).
_PIXEL_LIMIT: ContextVar[int] = ContextVar("pixel_limit", default=MAX_PIXELS)


@contextmanager
def _pixel_limit(limit: int) -> Iterator[None]:
    token = _PIXEL_LIMIT.set(limit)
    try:
        yield
    finally:
        _PIXEL_LIMIT.reset(token)


def _check_pixels(path: Path, fmt: str, n_pixels: int, what: str) -> None:
    """Refuse a declared size over the read's pixel limit (``what`` says what the header declares)."""
    limit = _PIXEL_LIMIT.get()
    if n_pixels > limit:
        why = ("nanofind reads (MAX_PIXELS)" if limit == MAX_PIXELS else
               "the memory limit allows (--max-memory)")
        raise NanofindInputError(f"{fmt} header declares {what} = {n_pixels:,} pixels, more than the "
                                 f"{limit:,} {why}; refused before reading", str(path))


def _check_extent(path: Path, fmt: str, end: int, size: int, what: str) -> None:
    """Refuse a file shorter than the ``end`` byte its header implies."""
    if end > size:
        raise NanofindInputError(f"truncated {fmt} file: the header declares {what}, which needs {end:,} bytes, "
                                 f"but the file holds {size:,}", str(path))


def _describe(exc: BaseException, path: Path) -> str:
    message = " ".join(str(exc).split()).replace(str(path), path.name)
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence library warnings and the readers' logs while reading (problems are raised instead)."""
    loggers = [logging.getLogger(name) for name in ("rsciio", "tifffile")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _as_image(array: np.ndarray, path: Path, fmt: str) -> np.ndarray:
    """float32 (rows, cols) or (frames, rows, cols), RGB made grey, after the value checks."""
    where = str(path)
    if array.dtype.names:
        if not {"R", "G", "B"} <= set(array.dtype.names):
            raise NanofindInputError(f"unsupported pixel type {array.dtype}", where)
        array = np.stack([array[c] for c in "RGB"], axis=-1)
    if array.ndim >= 3 and array.shape[-1] in (3, 4) and fmt != "MRC":
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
    if min(rows, cols) < MIN_SIDE_PX:
        raise NanofindInputError(f"image is {rows}x{cols} pixels (rows x columns); nanofind needs at least "
                                 f"{MIN_SIDE_PX} pixels on each side", where)
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        raise NanofindInputError(f"image holds {int(finite.size - np.count_nonzero(finite)):,} NaN or "
                                 "infinite values", where)
    del finite
    frames = array.reshape(-1, rows * cols)
    flat = np.flatnonzero(frames.min(axis=1) == frames.max(axis=1))
    if flat.size:
        if array.ndim == 2:
            raise NanofindInputError(f"constant image: nothing to analyse (every pixel is {array.flat[0]:g})", where)
        raise NanofindInputError(f"constant image: nothing to analyse (frame {int(flat[0])} of {len(frames)} "
                                 "has one value everywhere)", where)
    return array


# --- MRC, TIFF, PNG/JPEG ----------------------------------------------------------------------------


def _read_mrc(path: Path, size: int, head: bytes, fmt: str):
    import mrcfile

    if size < _MRC_HEADER:
        raise _not_valid(path, fmt, f"{size} bytes, shorter than the {_MRC_HEADER}-byte MRC header", head)
    orders = (">", "<") if head[212] == 0x11 else ("<", ">")  # machine stamp 0x11: big-endian
    for order in orders:
        nx, ny, nz, mode = struct.unpack_from(order + "4i", head, 0)
        if mode in _MRC_MODE_BYTES:
            break
    else:
        raise _not_valid(path, fmt, f"unknown data mode {mode}", head)
    extended = struct.unpack_from(order + "i", head, 92)[0]
    if min(nx, ny, nz) < 1 or extended < 0:
        raise _not_valid(path, fmt, f"header declares {nx}x{ny}x{nz} voxels and a {extended}-byte extended header",
                         head)
    what = f"{nx}x{ny}x{nz} voxels (nx x ny x nz) of mode {mode}"
    _check_pixels(path, fmt, nx * ny * nz, what)
    row_bytes = (nx + 1) // 2 if mode == 101 else nx * _MRC_MODE_BYTES[mode]
    _check_extent(path, fmt, _MRC_HEADER + extended + int(row_bytes) * ny * nz, size, what)
    with mrcfile.open(path, permissive=True) as mrc:
        if mrc.data is None:
            raise _not_valid(path, fmt, "mrcfile found no readable data")
        data = np.array(mrc.data)
        voxel = float(mrc.voxel_size.x)
        voxel_y = float(mrc.voxel_size.y)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    meta = {"format": "mrc", "voxel_size_A": voxel, "mode": mode}
    if voxel > 0 and voxel_y > 0 and abs(voxel_y - voxel) > 0.01 * voxel:
        meta["pixel_size_y_A"] = voxel_y
    return data, (voxel if voxel > 0 else None), meta


def _read_tiff(path: Path, size: int, head: bytes, fmt: str):
    import tifffile

    from nanofind.io.tiff_metadata import resolution_pixel_size, rsciio_calibration, tiff_vendor

    _check_signature(path, fmt, head)
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise _not_valid(path, fmt, "it holds no image")
        series = tif.series[0]
        shape = tuple(int(n) for n in series.shape)
        samples = shape[series.axes.index("S")] if "S" in series.axes and len(shape) == len(series.axes) else 1
        what = "x".join(map(str, shape)) + f" {series.dtype} values"
        _check_pixels(path, fmt, math.prod(shape) // max(samples, 1), what)
        if series.dataoffset is not None:  # one contiguous, uncompressed block
            end = int(series.dataoffset) + int(series.nbytes)
        else:
            end = max((int(o) + int(c) for page in series.pages if page is not None
                       for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)), default=0)
        _check_extent(path, fmt, end, size, what)
        page = tif.pages.first
        compression = getattr(page.compression, "name", str(page.compression))
        try:
            data = series.asarray()
        except MemoryError:
            raise
        except Exception as exc:
            if int(page.compression) == 1:
                raise
            if isinstance(exc, ImportError) or "imagecodecs" in str(exc):
                raise NanofindInputError(f"reading this {compression}-compressed TIFF file needs the Python "
                                         "package imagecodecs (pip install imagecodecs)", str(path)) from None
            raise NanofindInputError(f"corrupt TIFF file: its {compression}-compressed image data cannot be "
                                     f"decoded ({_describe(exc, path)})", str(path)) from None
        if "S" in series.axes and data.ndim == len(series.axes):  # colour samples last (planar RGB too)
            data = np.moveaxis(data, series.axes.index("S"), -1)
        rows, cols = data.shape[-3:-1] if samples > 1 and data.ndim >= 3 else data.shape[-2:]
        meta = {"format": "tiff", "dtype": str(data.dtype)}
        if int(page.compression) != 1:
            meta["compression"] = compression.lower()
        vendor = tiff_vendor(page)
        pixel, source = resolution_pixel_size(tif, page, vendor)
        ij = tif.imagej_metadata or {}
        if ij:
            meta["imagej"] = {k: v for k, v in ij.items() if isinstance(v, str | int | float)}
    if vendor is not None:  # after the pixels: RosettaSciIO opens the file again, lazily (tags only)
        meta["vendor"] = vendor
        calibrated, vendor_meta = rsciio_calibration(path, vendor, int(rows), int(cols))
        meta.update(vendor_meta)  # with pixel_size_source when calibrated
        if calibrated is not None:
            pixel, source = calibrated, vendor_meta["pixel_size_source"]
    if pixel is not None:
        meta["pixel_size_source"] = source
    return data, pixel, meta


def _read_pillow(path: Path, size: int, head: bytes, fmt: str):
    from PIL import Image, ImageFile

    _check_signature(path, fmt, head)
    limit, truncated_ok = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    # Pillow's own pixel limit is replaced by MAX_PIXELS, checked below; a truncated image is an error.
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
    try:
        with Image.open(path) as im:
            width, height = im.size
            _check_pixels(path, fmt, width * height, f"{width}x{height} pixels")
            mode = im.mode
            data = np.asarray(im.convert("I;16") if mode in ("I;16", "I;16B") else im.convert("F")
                              if mode in ("I", "F") else im.convert("L"))
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = limit, truncated_ok
    return data, None, {"format": path.suffix.lower().lstrip("."), "mode": mode}


def metadata_json(micrograph: Micrograph) -> str:
    """The micrograph's metadata as JSON (non-JSON values as strings)."""
    return json.dumps(micrograph.metadata, default=str, ensure_ascii=False)
