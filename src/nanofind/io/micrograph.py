"""Micrographs: one object for an image, its pixel size and where it came from; reading one from a file.

Arrays are float32 with rows along y (``array[row, column]``). The pixel size is in Å and is
``None`` when the file does not record it. Reading never unpickles anything.

Formats
-------
Each file name suffix has a reader (:mod:`nanofind.io.registry`; the built-in ones are in
:mod:`nanofind.io.formats`): MRC (``.mrc``, ``.mrcs``; mrcfile), TIFF (``.tif``, ``.tiff``; tifffile,
with vendor calibration through RosettaSciIO, see :mod:`nanofind.io.formats.tiff`), PNG and JPEG
(Pillow), and through RosettaSciIO (``rsciio``): Gatan DigitalMicrograph ``.dm3``/``.dm4``,
FEI/Thermo Fisher TIA ``.ser`` (with its ``.emi`` companion for the microscope settings) and ``.emd``
(Velox and Berkeley/NCEM variants), see :mod:`nanofind.io.formats.vendor`.

A file that holds several signals (an EMD file with HAADF and DF images, a DM file with a
thumbnail, an EMI file with several ``.ser`` files) gives its *first* 2D image or image stack, in
the order the reader lists them; signals whose two last axes are calibrated in a length unit come
before uncalibrated ones (diffraction patterns, spectra). Which one was taken is recorded in
``metadata["signal_index"]`` out of ``metadata["signals"]``. The orientation of EMD data is the one
RosettaSciIO gives; for a 3D stack the one axis without a length unit is moved first (frames).

Checks
------
Every problem raises :class:`~nanofind.errors.NanofindInputError` with the file as its field, so the
command line prints one ``path: message`` line: missing file, directory, permission denied,
unsupported suffix, empty file, a file whose first bytes are not those of its format, a header that
declares more than :data:`~nanofind.io.checks.MAX_PIXELS` pixels or more data than the file holds
(checked from the header, before the pixels are read or memory is allocated for them), truncated or
corrupt data, non-finite pixels, a constant image and an image smaller than
:data:`~nanofind.io.checks.MIN_SIDE_PX` on a side (:mod:`nanofind.io.checks`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import nanofind.io.formats  # noqa: F401  (registers the built-in readers)
from nanofind.errors import NanofindInputError
from nanofind.io.checks import (
    MAX_PIXELS,
    MIN_SIDE_PX,
    as_image,
    check_pixel_size_override,
    length_in_A,
    pixel_limit,
)
from nanofind.io.files import describe_exception, file_size_bytes, quiet, read_head
from nanofind.io.registry import folder_suffixes, format_for, format_names

#: Format names by file name ending (the built-in readers; :func:`nanofind.io.registry.format_names`
#: lists readers registered since).
FORMATS = format_names()
#: File name endings of micrographs, to pick them from a folder. :func:`read_micrograph` also reads
#: ``.emi`` files, left out here because each only describes the ``<name>_<n>.ser`` files next to it,
#: which hold the images (a folder scan would otherwise read them twice).
SUFFIXES = folder_suffixes()

__all__ = ["FORMATS", "MAX_PIXELS", "MIN_SIDE_PX", "SUFFIXES", "Micrograph", "array_and_pixel_size",
           "length_in_A", "metadata_json", "read_micrograph"]


@dataclass
class Micrograph:
    """A 2D image (or a stack of frames) with its pixel size.

    Attributes
    ----------
    array : numpy.ndarray
        float32, (rows, columns) or (frames, rows, columns); rows along y.
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


def read_micrograph(path: str | Path, pixel_size_A: float | None = None, max_pixels: int | None = None,
                    min_side_px: int = MIN_SIDE_PX) -> Micrograph:
    """Read a micrograph file.

    Parameters
    ----------
    path : str or Path
        MRC (voxel size taken as the pixel size), TIFF (8/16/32-bit, uncompressed or compressed;
        pixel size from FEI/Thermo Fisher, Zeiss, TVIPS, Olympus SIS, JEOL SightX or
        DigitalMicrograph tags through RosettaSciIO, else from ImageJ metadata or centimetre-based
        resolution tags, never from a dpi), PNG or JPEG (pixel size unknown), DM3/DM4, TIA SER/EMI
        or EMD (pixel size from the axes' calibration), or a suffix registered with
        :func:`nanofind.io.registry.register_reader`. RGB images are converted to grey. See the
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
    check_pixel_size_override(pixel_size_A)
    size_bytes = file_size_bytes(path)
    entry = format_for(path)
    if entry is None:
        raise NanofindInputError(f"unsupported format {path.suffix.lower() or '(none)'}; nanofind reads "
                                 + ", ".join(format_names()), str(path))
    head = read_head(path, size_bytes=size_bytes)
    fmt = entry.format_name
    limit = MAX_PIXELS if max_pixels is None else min(max_pixels, MAX_PIXELS)
    try:
        with quiet(), pixel_limit(limit):
            array, pixel, meta = entry.reader(path, size_bytes=size_bytes, head=head, format_name=fmt)
    except NanofindInputError:
        raise
    except MemoryError:
        raise NanofindInputError(f"not enough memory to read this {fmt} file", str(path)) from None
    except ModuleNotFoundError as exc:  # rosettasciio itself, or an optional package a reader needs
        package = {"rsciio": "rosettasciio"}.get(exc.name or "", exc.name)
        need = f"the Python package {package} (pip install {package})" if package else describe_exception(exc, path)
        raise NanofindInputError(f"reading this {fmt} file needs {need}", str(path)) from None
    except (struct.error, EOFError) as exc:  # a parser ran out of bytes
        raise NanofindInputError(f"truncated or corrupt {fmt} file: it ends before the structure it describes "
                                 f"({describe_exception(exc, path)})", str(path)) from None
    except Exception as exc:  # whatever a library raises on a damaged file: name the file, no traceback
        raise NanofindInputError(f"cannot read: not a valid {fmt} file, or a truncated or corrupt one "
                                 f"({describe_exception(exc, path)})", str(path)) from None
    array = as_image(array if isinstance(array, np.ndarray) else np.asarray(array), path, format_name=fmt,
                     min_side_px=min_side_px)
    if pixel_size_A is not None:
        pixel = float(pixel_size_A)
        meta["pixel_size_source"] = "given (overrides the file's)"
    return Micrograph(array, pixel, meta, path)


def metadata_json(micrograph: Micrograph) -> str:
    """The micrograph's metadata as JSON (non-JSON values as strings)."""
    return json.dumps(micrograph.metadata, default=str, ensure_ascii=False)
