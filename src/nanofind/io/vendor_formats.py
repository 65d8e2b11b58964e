"""DM3/DM4, TIA SER/EMI and EMD micrographs through RosettaSciIO; calibration and metadata helpers.

The helpers (pixel size from axes, microscope settings as JSON-able scalars) also serve vendor
TIFFs (:mod:`nanofind.io.tiff_metadata`).

Each reader checks what the header declares (sizes, offsets, data types) before RosettaSciIO reads
or allocates anything; see :mod:`nanofind.io.micrograph` for the rules every format follows.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.io.micrograph import (
    _MRC_HEADER,
    _SER_BYTES,
    _SER_ELEMENT_HEADER,
    _SIGNATURES,
    _check_extent,
    _check_pixels,
    _check_signature,
    _not_valid,
    length_in_A,
)


def _read_rsciio(path: Path, size: int, head: bytes, fmt: str):
    if fmt in ("DM3", "DM4"):
        version = int.from_bytes(head[:4], "big")
        if len(head) < 16 or version not in (3, 4):
            raise _not_valid(path, fmt, f"the version field reads {version}, not 3 or 4", head)
        signals = _dm_signals(path)
    elif fmt == "SER":
        _check_ser(path, size, head, fmt)
        from rsciio.tia import file_reader

        signals = file_reader(str(path), lazy=False)
    elif fmt == "EMI":
        sers = sorted(path.parent.glob(path.stem + "_[0-9].ser"))
        if not sers:
            raise NanofindInputError(f"no {path.stem}_1.ser next to this EMI file (TIA keeps the image in the "
                                     ".ser file)", str(path))
        for ser in sers:
            with ser.open("rb") as f:
                _check_ser(ser, ser.stat().st_size, f.read(_MRC_HEADER), "SER")
        from rsciio.tia import file_reader

        signals = file_reader(str(path), lazy=False)
    else:
        signals = _emd_signals(path, head, fmt)
    try:
        index, signal = _pick_signal(signals, path, fmt)
        data, axes = signal["data"], list(signal.get("axes") or [])
        shape = tuple(int(n) for n in data.shape)
        _check_pixels(path, fmt, math.prod(shape), "x".join(map(str, shape)) + " pixels")
        if fmt in ("DM3", "DM4"):
            _check_dm_extent(path, fmt, signal, shape, size)
        data, axes = _frames_first(data, axes)
        if hasattr(data, "compute"):
            data = data.compute(scheduler="synchronous")
        array = np.asarray(data)
        pixel, meta = _axes_pixel_size(axes)
        om = signal.get("original_metadata") or {}
        meta = {"format": fmt.lower(), "signal_index": index, "signals": len(signals), **meta,
                **_original_metadata(om, signal.get("metadata") or {})}
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
    _check_extent(path, fmt, offset + nbytes, size, what)


def _check_ser(path: Path, size: int, head: bytes, fmt: str) -> None:
    """Check a TIA series header and its data offsets before RosettaSciIO reads (and allocates) it."""
    _check_signature(path, fmt, head)
    if len(head) < 34:
        raise _not_valid(path, fmt, f"{size} bytes, shorter than a SER header")
    version, data_type, _tag_type, total, valid = struct.unpack_from("<HIIII", head, 4)
    wide = version > 0x0210
    table, _ndim = struct.unpack_from("<QI" if wide else "<II", head, 22)
    if data_type == 0x4120:
        raise NanofindInputError("this SER file holds spectra, not images", str(path))
    if data_type != 0x4122:
        raise _not_valid(path, fmt, f"unknown data type id {data_type:#x}")
    if valid == 0:
        raise NanofindInputError("this SER file holds no data (no valid elements)", str(path))
    if valid > total:
        raise _not_valid(path, fmt, f"{valid} valid elements out of {total}")
    item = 8 if wide else 4
    _check_extent(path, fmt, table + valid * item, size, f"an offset table of {valid:,} elements at byte {table:,}")
    with path.open("rb") as f:
        f.seek(table)
        offsets = np.frombuffer(f.read(valid * item), "<u8" if wide else "<u4").astype(np.int64)
        first = int(offsets[0])
        _check_extent(path, fmt, first + _SER_ELEMENT_HEADER, size, f"its first image at byte {first:,}")
        f.seek(first)
        element = f.read(_SER_ELEMENT_HEADER)
    code, nx, ny = struct.unpack_from("<HII", element, 40)
    if code not in _SER_BYTES:
        raise _not_valid(path, fmt, f"unknown pixel type code {code}")
    what = f"{valid} image(s) of {nx}x{ny} pixels"
    _check_pixels(path, fmt, valid * nx * ny, what)
    _check_extent(path, fmt, int(offsets.max()) + _SER_ELEMENT_HEADER + nx * ny * _SER_BYTES[code], size, what)


def _emd_signals(path: Path, head: bytes, fmt: str) -> list[dict]:
    import h5py
    from rsciio.emd import file_reader

    if not (head.startswith(_SIGNATURES["EMD"]) or h5py.is_hdf5(path)):
        raise _not_valid(path, fmt, "it is not an HDF5 file", head)
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
        _check_pixels(path, fmt, math.prod(shape), f"dataset {name} of " + "x".join(map(str, shape)) + " values")
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


def _axes_pixel_size(axes: list[dict]) -> tuple[float | None, dict]:
    """Pixel size (Å) from the column axis, and the calibration as metadata."""
    if len(axes) < 2:
        return None, {}
    x, y = axes[-1], axes[-2]
    units = str(x.get("units") or "")
    try:
        scale_x, scale_y = float(x.get("scale") or 0.0), float(y.get("scale") or 0.0)
    except (TypeError, ValueError):
        return None, {}
    meta = {"pixel_scale": scale_x, "pixel_unit": units}
    pixel = length_in_A(scale_x, units)
    pixel_y = length_in_A(scale_y, str(y.get("units") or ""))
    if pixel is not None and pixel_y is not None and abs(pixel_y - pixel) > 0.01 * pixel:
        meta["pixel_size_y_A"] = pixel_y  # non-square pixels: pixel_size_A is the column spacing
    return pixel, meta


#: Metadata kept from each reader's original metadata: name, path, factor to apply to a number.
_METADATA_PATHS = (
    # DigitalMicrograph (ImageList.TagGroup0 is the image read)
    ("voltage_V", ("ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Voltage"), None),
    ("magnification", ("ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Indicated Magnification"), None),
    ("actual_magnification", ("ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Actual Magnification"),
     None),
    ("microscope", ("ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Microscope"), None),
    ("microscope", ("ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Name"), None),
    ("illumination_mode", ("ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Illumination Mode"), None),
    ("imaging_mode", ("ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Imaging Mode"), None),
    ("exposure_s", ("ImageList", "TagGroup0", "ImageTags", "Acquisition", "Parameters", "High Level",
                    "Exposure (s)"), None),
    ("acquisition_date", ("ImageList", "TagGroup0", "ImageTags", "DataBar", "Acquisition Date"), None),
    ("acquisition_time", ("ImageList", "TagGroup0", "ImageTags", "DataBar", "Acquisition Time"), None),
    ("title", ("ImageList", "TagGroup0", "Name"), None),
    # TIA (from the .emi file)
    ("voltage_V", ("ObjectInfo", "ExperimentalDescription", "High tension_kV"), 1e3),
    ("magnification", ("ObjectInfo", "ExperimentalDescription", "Magnification_x"), None),
    ("microscope", ("ObjectInfo", "ExperimentalDescription", "Microscope"), None),
    ("mode", ("ObjectInfo", "ExperimentalDescription", "Mode"), None),
    ("defocus_um", ("ObjectInfo", "ExperimentalDescription", "Defocus_um"), None),
    ("acquisition_date", ("ObjectInfo", "AcquireDate"), None),
    # Velox EMD
    ("voltage_V", ("Optics", "AccelerationVoltage"), 1.0),
    ("magnification", ("Optics", "NominalMagnification"), 1.0),
    ("magnification", ("CustomProperties", "StemMagnification", "value"), 1.0),
    ("camera_length_m", ("Optics", "CameraLength"), 1.0),
    ("defocus_m", ("Optics", "Defocus"), 1.0),
    ("microscope", ("Instrument", "InstrumentModel"), None),
    ("detector", ("BinaryResult", "Detector"), None),
    ("acquisition_unix_time", ("Acquisition", "AcquisitionStartDatetime", "DateTime"), 1.0),
)
_VOLTAGE_KEYS = re.compile(r"^(voltage|high[ _]?tension|ht|e0|accelerating[ _]voltage|acceleration[ _]voltage)"
                           r"(_?\(?(k?v)\)?)?$", re.IGNORECASE)


def _scalar(value):
    """A JSON-able scalar (str, int, float, bool) or None."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        value = value.strip().strip("\x00")
        return value[:200] if value and value != "[]" else None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _number(value, factor: float):
    try:
        number = float(value) * factor
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _original_metadata(om: dict, md: dict) -> dict:
    """Microscope settings worth keeping, as JSON-able scalars."""
    meta: dict = {}
    for name, keys, factor in _METADATA_PATHS:
        node = om
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        value = _number(node, factor) if factor is not None else _scalar(node)
        if value is not None and name not in meta:
            meta[name] = value
    for group in ("microscope", "sample", "user", "comments"):  # Berkeley/NCEM EMD attributes
        attrs = om.get(group)
        if isinstance(attrs, dict):
            kept = {str(k): v for k, v in ((k, _scalar(v)) for k, v in list(attrs.items())[:50]) if v is not None}
            if kept:
                meta[f"emd_{group}"] = kept
                for key, value in kept.items():
                    match = _VOLTAGE_KEYS.match(key)
                    number = _number(value, 1.0)
                    if match and number and "voltage_V" not in meta:  # a bare value under 1000 is taken as kV
                        unit = (match.group(3) or "").lower()
                        meta["voltage_V"] = number * (1e3 if unit == "kv" or (not unit and number < 1e3) else 1.0)
    title = _scalar((md.get("General") or {}).get("title")) if isinstance(md, dict) else None
    if title and "title" not in meta:
        meta["title"] = title
    json.dumps(meta)  # JSON-able by construction
    return meta
