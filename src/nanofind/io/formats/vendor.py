"""DM3/DM4, TIA SER/EMI and EMD micrographs through RosettaSciIO (``rsciio``).

A file that holds several signals gives its first 2D image or image stack (see
:func:`nanofind.io.read_micrograph`); the pixel size comes from the calibration of its two last axes.

What the header declares (sizes, offsets, data types) is checked before RosettaSciIO reads or
allocates the pixels: DM and EMD files are opened lazily (shapes first); a contiguous EMD dataset,
which cannot be read lazily, has every dataset's declared shape checked through h5py first. TIA
series headers are checked here, from the published layout, because RosettaSciIO's TIA reader
allocates and reads every image even with ``lazy=True`` (measured with rosettasciio 0.15: 1.68 GiB
allocated for a 13 kB file whose header declares one 30000 x 30000 image).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.io.checks import check_extent, check_pixels, length_in_A
from nanofind.io.files import HEAD_BYTES, SIGNATURES, check_signature, not_valid
from nanofind.io.formats.rsciio_metadata import axes_pixel_size, microscope_settings

#: Bytes per pixel of the TIA data type codes.
_SER_BYTES = {1: 1, 2: 2, 3: 4, 4: 1, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 16}
#: Bytes before the pixels of each image element of a TIA series (calibration, type code, size).
_SER_ELEMENT_HEADER = 50


def read_dm(path: Path, *, size_bytes: int, head: bytes, format_name: str):
    """Pixels, pixel size (Å; None without a length calibration) and metadata of a DigitalMicrograph DM3/DM4 file."""
    version = int.from_bytes(head[:4], "big")
    if len(head) < 16 or version not in (3, 4):
        raise not_valid(path, format_name, f"the version field reads {version}, not 3 or 4", head)
    return _first_image(path, _dm_signals(path), size_bytes=size_bytes, format_name=format_name)


def read_tia(path: Path, *, size_bytes: int, head: bytes, format_name: str):
    """Pixels, pixel size (Å) and metadata of a TIA ``.ser`` file, or of the ``.ser`` files an ``.emi`` file describes.

    An ``.emi`` file adds the microscope settings; its images are in ``<name>_<n>.ser`` next to it.
    """
    if path.suffix.lower() == ".emi":
        sers = sorted(path.parent.glob(path.stem + "_[0-9].ser"))
        if not sers:
            raise NanofindInputError(f"no {path.stem}_1.ser next to this EMI file (TIA keeps the image in the "
                                     ".ser file)", str(path))
        for ser in sers:
            with ser.open("rb") as f:
                _check_ser(ser, size_bytes=ser.stat().st_size, head=f.read(HEAD_BYTES))
    else:
        _check_ser(path, size_bytes=size_bytes, head=head)
    from rsciio.tia import file_reader

    return _first_image(path, file_reader(str(path), lazy=False), size_bytes=size_bytes, format_name=format_name)


def read_emd(path: Path, *, size_bytes: int, head: bytes, format_name: str):
    """Pixels, pixel size (Å) and metadata of the first image of an EMD file (Velox or Berkeley/NCEM)."""
    return _first_image(path, _emd_signals(path, head, format_name), size_bytes=size_bytes,
                        format_name=format_name)


def _first_image(path: Path, signals: list[dict], *, size_bytes: int, format_name: str):
    """The first image signal's pixels (rows, columns) or (frames, rows, columns), pixel size (Å) and metadata.

    Metadata records which signal was taken (``signal_index`` of ``signals``) and the microscope
    settings found.
    """
    fmt = format_name
    try:
        index, signal = _pick_signal(signals, path, fmt)
        data, axes = signal["data"], list(signal.get("axes") or [])
        shape = tuple(int(n) for n in data.shape)
        check_pixels(path, format_name=fmt, n_pixels=math.prod(shape), what="x".join(map(str, shape)) + " pixels")
        if fmt in ("DM3", "DM4"):
            _check_dm_extent(path, fmt, signal, shape, size_bytes)
        data, axes = _frames_first(data, axes)
        if hasattr(data, "compute"):
            data = data.compute(scheduler="synchronous")
        array = np.asarray(data)
        pixel, meta = axes_pixel_size(axes)
        om = signal.get("original_metadata") or {}
        meta = {"format": fmt.lower(), "signal_index": index, "signals": len(signals), **meta,
                **microscope_settings(om, signal.get("metadata") or {})}
    finally:  # a lazy reader's dictionaries refer back to it: break the cycle so that its file closes now
        for item in signals or []:
            if isinstance(item, dict):
                item.clear()
        signal = data = None
    return array, pixel, meta


def _dm_signals(path: Path) -> list[dict]:
    from rsciio.digitalmicrograph import file_reader

    try:  # lazy: shapes first, pixels only once they pass the checks (and only those of one image)
        return file_reader(str(path), lazy=True, chunks=-1)
    except ValueError as exc:
        if "lazy" not in str(exc).lower():
            raise
    except TypeError as exc:  # RosettaSciIO iterates over None when the tags hold no ImageList
        if "NoneType" in str(exc):
            raise NanofindInputError(f"no image in this {path.suffix[1:].upper()} file (its tags hold no "
                                     "ImageList)", str(path)) from None
        raise
    return file_reader(str(path), lazy=False)  # RGB images cannot be read lazily; reading stops at the file's end


def _check_dm_extent(path: Path, fmt: str, signal: dict, shape: tuple[int, ...], size: int) -> None:
    try:
        info = signal["original_metadata"]["ImageList"]["TagGroup0"]["ImageData"]["Data"]
        offset, count, nbytes = int(info["offset"]), int(info["size"]), int(info["size_bytes"])
    except (KeyError, TypeError, ValueError):
        return  # read eagerly: already bounded by the file
    what = "x".join(map(str, shape)) + " pixels"
    if count < math.prod(shape):
        raise NanofindInputError(f"corrupt {fmt} file: the image dimensions declare {what} but its data array "
                                 f"holds {count:,} values", str(path))
    check_extent(path, format_name=fmt, end_byte=offset + nbytes, size_bytes=size, what=what)


def _check_ser(path: Path, *, size_bytes: int, head: bytes) -> None:
    """Check a TIA series header and its data offsets before RosettaSciIO reads (and allocates) it."""
    fmt, size = "SER", size_bytes
    check_signature(path, fmt, head)
    if len(head) < 34:
        raise not_valid(path, fmt, f"{size} bytes, shorter than a SER header")
    version, data_type, _tag_type, total, valid = struct.unpack_from("<HIIII", head, 4)
    wide = version > 0x0210
    table, _ndim = struct.unpack_from("<QI" if wide else "<II", head, 22)
    if data_type == 0x4120:
        raise NanofindInputError("this SER file holds spectra, not images", str(path))
    if data_type != 0x4122:
        raise not_valid(path, fmt, f"unknown data type id {data_type:#x}")
    if valid == 0:
        raise NanofindInputError("this SER file holds no data (no valid elements)", str(path))
    if valid > total:
        raise not_valid(path, fmt, f"{valid} valid elements out of {total}")
    item = 8 if wide else 4
    check_extent(path, format_name=fmt, end_byte=table + valid * item, size_bytes=size,
                 what=f"an offset table of {valid:,} elements at byte {table:,}")
    with path.open("rb") as f:
        f.seek(table)
        offsets = np.frombuffer(f.read(valid * item), "<u8" if wide else "<u4").astype(np.int64)
        first = int(offsets[0])
        check_extent(path, format_name=fmt, end_byte=first + _SER_ELEMENT_HEADER, size_bytes=size,
                     what=f"its first image at byte {first:,}")
        f.seek(first)
        element = f.read(_SER_ELEMENT_HEADER)
    code, nx, ny = struct.unpack_from("<HII", element, 40)
    if code not in _SER_BYTES:
        raise not_valid(path, fmt, f"unknown pixel type code {code}")
    what = f"{valid} image(s) of {nx}x{ny} pixels"
    check_pixels(path, format_name=fmt, n_pixels=valid * nx * ny, what=what)
    check_extent(path, format_name=fmt, end_byte=int(offsets.max()) + _SER_ELEMENT_HEADER + nx * ny * _SER_BYTES[code],
                 size_bytes=size, what=what)


def _emd_signals(path: Path, head: bytes, fmt: str) -> list[dict]:
    import h5py
    from rsciio.emd import file_reader

    if not (head.startswith(SIGNATURES["EMD"]) or h5py.is_hdf5(path)):
        raise not_valid(path, fmt, "it is not an HDF5 file", head)
    try:  # lazy: only the chosen image is read, after the size checks
        return file_reader(str(path), lazy=True, select_type="images")
    except (ValueError, TypeError) as exc:
        if "chunk" not in str(exc).lower():
            raise
    # Contiguous datasets cannot be read lazily: check every dataset's declared size first.
    with h5py.File(path, "r") as f:
        shapes = []
        f.visititems(lambda name, obj: shapes.append((name, obj.shape)) if isinstance(obj, h5py.Dataset) else None)
    for name, shape in shapes:
        check_pixels(path, format_name=fmt, n_pixels=math.prod(shape),
                     what=f"dataset {name} of " + "x".join(map(str, shape)) + " values")
    return file_reader(str(path), lazy=False, select_type="images")


def _squeeze(data, axes: list[dict]):
    keep = [k for k, n in enumerate(data.shape) if n > 1]
    if len(keep) == data.ndim or len(keep) < 2:
        return data, axes
    index = tuple(slice(None) if n > 1 else 0 for n in data.shape)
    return data[index], [a for k, a in enumerate(axes) if k in keep] if len(axes) == data.ndim else []


def _is_length(axis: dict) -> bool:
    return length_in_A(1.0, axis.get("units") or "") is not None


def _pick_signal(signals, path: Path, fmt: str) -> tuple[int, dict]:
    """Index and dictionary of the first 2D/3D image signal (calibrated in length first, real before complex)."""
    candidates = []
    for k, signal in enumerate(signals or []):
        data = signal.get("data") if isinstance(signal, dict) else None
        try:
            dtype = np.dtype(data.dtype)
        except (AttributeError, TypeError):
            continue
        if not (dtype.kind in "biufc" or (dtype.names and {"R", "G", "B"} <= set(dtype.names))):
            continue
        data, axes = _squeeze(data, list(signal.get("axes") or []))
        if data.ndim not in (2, 3):
            continue
        calibrated = len(axes) == data.ndim and all(_is_length(a) for a in axes[-2:])
        candidates.append(((not calibrated, dtype.kind == "c", k), {**signal, "data": data, "axes": axes}))
    if not candidates:
        shapes = ", ".join(str(tuple(getattr(s.get("data"), "shape", ())))
                           for s in signals or [] if isinstance(s, dict))
        raise NanofindInputError(f"no 2D image or image stack in this {fmt} file"
                                 + (f" (its signals have shapes {shapes})" if shapes else ""), str(path))
    key, signal = min(candidates, key=lambda c: c[0])
    return key[2], signal


def _frames_first(data, axes: list[dict]):
    """For a 3D stack whose one non-length axis is not first, move that axis first."""
    if data.ndim != 3 or len(axes) != 3:
        return data, axes
    other = [k for k, a in enumerate(axes) if not _is_length(a)]
    if len(other) != 1 or other[0] == 0:
        return data, axes
    k = other[0]
    order = [k] + [j for j in range(3) if j != k]
    return data.transpose(order), [axes[j] for j in order]
