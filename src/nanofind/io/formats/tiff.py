r"""TIFF micrographs: pixels through tifffile, pixel size and settings from vendor metadata when there is some.

tifffile reads the pixels (with imagecodecs for JPEG, LZW, Deflate, ZSTD and the other compressions
vendor software writes); the declared shape and the data's byte ranges are checked before. The
pixel size comes from, in order:

1. **Vendor metadata, through RosettaSciIO's TIFF reader** (``rsciio.tiff.file_reader`` with
   ``lazy=True``: it parses the tags again but reads no pixel). It is consulted only when the first
   page holds a tag that RosettaSciIO interprets (see :data:`VENDOR_TAGS`):

   - FEI / Thermo Fisher (tag 34680 ``FEI_SFEG`` or 34682 ``FEI_HELIOS``): ``[Scan] PixelWidth``
     (or ``[IRBeam] HFW`` over ``[Image] ResolutionX``), in metres;
   - Zeiss SEM (34118 ``CZ_SEM``): the scan pixel size scaled from 1024 pixels to the image width;
   - TVIPS (37706): ``PixelSizeX`` in nm, else the resolution tags;
   - Olympus SIS (33471, 33560): ``pixelsizex`` in metres;
   - JEOL SightX (``Make`` is ``JEOL Ltd.``): the resolution tags (the camera's pixel pitch)
     divided by the magnification in the XML description;
   - DigitalMicrograph export (65003-65011, 65022, 65024, 65025): each axis's scale and unit.

   A calibration is kept only in a length unit (a diffraction pattern's ``1 / nm`` is not a pixel
   size) and only when RosettaSciIO's axes have the image's size.
2. **ImageJ metadata** (``unit=`` in the image description, with the resolution tags), read with
   tifffile: any length unit ImageJ writes (``nm``, ``micron``, ``\u00c5`` for Å...); RosettaSciIO
   understands only ``micron``. This is also the fallback when RosettaSciIO fails on a vendor file.
3. **The resolution tags** when their unit is the centimetre. Inch-based resolutions (72 or 300 dpi
   from ordinary image software, or DigitalMicrograph's export) describe printing, not the specimen,
   and are ignored, as are the resolution tags of JEOL files (the camera plane, not the specimen).

``metadata["pixel_size_source"]`` says which one gave the pixel size; vendor files also record
``metadata["vendor"]`` and, as JSON-able scalars, the settings worth keeping (accelerating voltage,
magnification, microscope, detector, acquisition date and time). An FEI image whose data bar is part
of the image records the number of its rows in ``metadata["data_bar_rows"]`` (the image is not
cropped). When RosettaSciIO fails, ``metadata["rsciio_error"]`` says why.

Consulting RosettaSciIO costs about 0.4 s once per process (importing its TIFF reader and
``dask.array``), then about 1 ms a file; plain TIFFs never pay it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.io.checks import check_extent, check_pixels, length_in_A
from nanofind.io.files import check_signature, describe_exception, not_valid
from nanofind.io.formats.rsciio_metadata import axes_pixel_size, finite_number, json_scalar, nested_get

#: Tags (on the first page) that make a TIFF a vendor file whose calibration RosettaSciIO reads, in
#: the order RosettaSciIO checks them. JEOL SightX files are recognised by their ``Make`` tag instead.
VENDOR_TAGS = (
    ("FEI", (34680, 34682)),
    ("Zeiss", (34118,)),
    ("TVIPS", (37706,)),
    ("Olympus SIS", (33471, 33560)),
    ("JEOL", ()),
    ("DigitalMicrograph", (65003, 65004, 65005, 65006, 65007, 65008, 65009, 65010, 65011, 65022, 65024, 65025)),
)
#: Where each vendor's calibration lies, for ``metadata["pixel_size_source"]``.
_SOURCES = {"FEI": "FEI metadata", "Zeiss": "Zeiss CZ_SEM tag", "TVIPS": "TVIPS tag", "Olympus SIS": "Olympus SIS tag",
            "JEOL": "JEOL SightX resolution and magnification", "DigitalMicrograph": "DigitalMicrograph tags"}
_JEOL_MAKE = "JEOL Ltd."

#: Settings kept from RosettaSciIO's ``original_metadata``: name, path, factor to apply to a number
#: (None: kept as a string or other scalar).
_PATHS = (
    ("voltage_V", ("fei_metadata", "Beam", "HV"), 1.0),
    ("voltage_V", ("fei_metadata", "EBeam", "HV"), 1.0),
    ("microscope", ("fei_metadata", "System", "SystemType"), None),
    ("detector", ("fei_metadata", "Detectors", "Name"), None),
    ("horizontal_field_width_m", ("fei_metadata", "EBeam", "HFW"), 1.0),
    ("dwell_time_s", ("fei_metadata", "Scan", "Dwelltime"), 1.0),
    ("acquisition_date", ("fei_metadata", "User", "Date"), None),
    ("acquisition_time", ("fei_metadata", "User", "Time"), None),
    ("voltage_V", ("TVIPS", "TemHighTension"), 1.0),
    ("detector", ("TVIPS", "CameraType"), None),
    ("magnification", ("Olympus_SIS_metadata", "magnification"), 1.0),
    ("detector", ("Olympus_SIS_metadata", "cameraname"), None),
    ("voltage_V", ("ImageDescription", "ElectronGun", "AccelerationVoltage"), 1.0),
    ("microscope", ("ImageDescription", "Instruments"), None),
)
#: Zeiss CZ_SEM entries, each a tuple (label, value[, unit]).
_ZEISS = (("voltage_V", "ap_actualkv"), ("magnification", "ap_mag"), ("microscope", "sv_serial_number"),
          ("detector", "dp_detector_channel"), ("acquisition_date", "ap_date"), ("acquisition_time", "ap_time"))
_VOLTS = {"v": 1.0, "kv": 1e3, "mv": 1e6}
_MAGNIFICATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmM]?)\s*[xX]?\s*$")


def read_tiff(path: Path, *, size_bytes: int, head: bytes, format_name: str):
    """Pixels of the first series of a TIFF file, its pixel size (Å; None when not recorded) and metadata.

    Colour samples come last, RGB included; ``metadata["pixel_size_source"]`` says where the pixel
    size came from, ``metadata["vendor"]`` names a vendor file.
    """
    import tifffile

    fmt, size = format_name, size_bytes
    check_signature(path, fmt, head)
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise not_valid(path, fmt, "it holds no image")
        series = tif.series[0]
        shape = tuple(int(n) for n in series.shape)
        samples = shape[series.axes.index("S")] if "S" in series.axes and len(shape) == len(series.axes) else 1
        what = "x".join(map(str, shape)) + f" {series.dtype} values"
        check_pixels(path, format_name=fmt, n_pixels=math.prod(shape) // max(samples, 1), what=what)
        if series.dataoffset is not None:  # one contiguous, uncompressed block
            end = int(series.dataoffset) + int(series.nbytes)
        else:
            end = max((int(o) + int(c) for page in series.pages if page is not None
                       for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)), default=0)
        check_extent(path, format_name=fmt, end_byte=end, size_bytes=size, what=what)
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
                                     f"decoded ({describe_exception(exc, path)})", str(path)) from None
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


def tiff_vendor(page) -> str | None:
    """The vendor (a key of :data:`VENDOR_TAGS`) whose calibration tags a tifffile page holds, or None."""
    tags = page.tags
    for vendor, codes in VENDOR_TAGS:
        if vendor == "JEOL":
            make = tags.get(271)
            if make is not None and str(make.value).strip() == _JEOL_MAKE:
                return vendor
        elif any(code in tags for code in codes):
            return vendor
    return None


def resolution_pixel_size(tif, page, vendor: str | None = None) -> tuple[float | None, str | None]:
    """Pixel size (Å) from ImageJ metadata or centimetre-based resolution tags, and where it came from."""
    ij = tif.imagej_metadata or {}
    x_res = page.tags.get("XResolution")
    unit_tag = page.tags.get("ResolutionUnit")
    if x_res is None:
        return None, None
    try:
        num, den = x_res.value
        per_unit = num / den if den else 0.0
    except (TypeError, ValueError):
        return None, None
    if not per_unit > 0:
        return None, None
    if ij.get("unit"):
        pixel = length_in_A(1.0 / per_unit, ij["unit"])
        return pixel, "ImageJ metadata" if pixel is not None else None
    if vendor != "JEOL" and unit_tag is not None and int(unit_tag.value) == 3:  # centimetre
        return length_in_A(1.0 / per_unit, "cm"), "TIFF resolution tags (pixels per centimetre)"
    return None, None  # no unit, or inches: printing resolution (72 dpi...), not the specimen's


def rsciio_calibration(path: Path, vendor: str, rows: int, cols: int) -> tuple[float | None, dict]:
    """Pixel size (Å) from RosettaSciIO's TIFF reader, and metadata; (None, metadata) when it has none.

    The first signal (the first tifffile series, as nanofind reads) is used; its axes must have
    ``rows`` and ``cols`` pixels. Any exception RosettaSciIO raises is reported in
    ``metadata["rsciio_error"]``, never raised.
    """
    signals = None
    try:
        from rsciio.tiff import file_reader

        signals = file_reader(str(path), lazy=True)
        signal = signals[0]
        axes = [a for a in signal.get("axes") or [] if isinstance(a, dict)]
        named = {a.get("name"): a for a in axes}
        if "width" in named and "height" in named:
            height, width = named["height"], named["width"]
        elif len(axes) >= 2:
            height, width = axes[-2], axes[-1]
        else:
            return None, {"rsciio_error": f"no image axes (got {len(axes)})"}
        sizes = (int(height.get("size", rows)), int(width.get("size", cols)))
        if sizes != (rows, cols):
            return None, {"rsciio_error": f"its axes are {sizes[0]}x{sizes[1]}, the image {rows}x{cols}"}
        pixel, calibration = axes_pixel_size([height, width])
        if not calibration.get("pixel_unit"):
            calibration = {}
        meta = {**calibration, **vendor_metadata(signal.get("original_metadata") or {},
                                                 signal.get("metadata") or {}, rows)}
        if pixel is None:
            meta["rsciio_error"] = f"no length calibration in the {_SOURCES[vendor]}"
        else:
            meta["pixel_size_source"] = f"rsciio tiff ({_SOURCES[vendor]})"
        return pixel, meta
    except Exception as exc:  # RosettaSciIO fails on a file tifffile reads: fall back, say why
        return None, {"rsciio_error": describe_exception(exc, path)}
    finally:
        _close(signals)


def vendor_metadata(om: dict, md: dict, rows: int) -> dict:
    """Microscope settings from RosettaSciIO's original metadata, as JSON-able scalars."""
    meta: dict = {}
    for name, keys, factor in _PATHS:
        value = json_scalar(nested_get(om, keys)) if factor is None else finite_number(nested_get(om, keys), factor)
        if value is not None and name not in meta:
            meta[name] = value
    zeiss = om.get("CZ_SEM")
    if isinstance(zeiss, dict):
        for name, key in _ZEISS:
            value = _zeiss_value(name, zeiss.get(key))
            if value is not None and name not in meta:
                meta[name] = value
    tvips = om.get("TVIPS")
    if isinstance(tvips, dict):  # TemMode 3 is diffraction: the "magnification" is then a camera length
        value = finite_number(tvips.get("TemMagnification"), 1.0)
        if value is not None:
            meta["camera_length" if tvips.get("TemMode") == 3 else "magnification"] = value
    forming = nested_get(om, ("ImageDescription", "ImageFormingSystem"))
    if isinstance(forming, dict) and forming.get("ModeString") == "MAG":  # JEOL SightX
        value = finite_number(forming.get("SelectorValue"), 1.0)
        if value is not None:
            meta["magnification"] = value
    height = finite_number(nested_get(om, ("fei_metadata", "Image", "ResolutionY")), 1.0)
    if height and 0 < height < rows:  # the FEI data bar is stored below the image
        meta["data_bar_rows"] = int(rows - height)
    general = md.get("General") if isinstance(md, dict) else None
    if isinstance(general, dict):
        for key in ("date", "time"):
            value = json_scalar(general.get(key))
            if value is not None:
                meta.setdefault(f"acquisition_{key}", value)
        title = json_scalar(general.get("title"))
        if title is not None:
            meta["title"] = title
    return meta


def _zeiss_value(name: str, entry):
    """A Zeiss CZ_SEM entry (label, value[, unit]) as the scalar ``name`` stands for."""
    if not isinstance(entry, tuple) or len(entry) < 2:
        return None
    value, unit = entry[1], str(entry[2]) if len(entry) > 2 else ""
    if name == "voltage_V":
        factor = _VOLTS.get(unit.strip().lower())
        return finite_number(value, factor) if factor else None
    if name == "magnification":  # '50.00 K X'
        match = _MAGNIFICATION.match(str(value))
        if match is None:
            return None
        return float(match.group(1)) * {"": 1.0, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    return json_scalar(value)


def _close(signals) -> None:
    """Close the files a lazy RosettaSciIO TIFF read keeps open (its dask tasks hold the tifffile series)."""
    for signal in signals or []:
        if not isinstance(signal, dict):
            continue
        try:
            tasks = dict(signal["data"].__dask_graph__()).values()
        except Exception:
            tasks = ()
        for task in tasks:
            for arg in getattr(task, "args", ()) or ():
                parent = getattr(arg, "parent", None)
                if hasattr(parent, "filehandle") and hasattr(parent, "close"):  # a tifffile.TiffFile
                    parent.close()
        signal.clear()
