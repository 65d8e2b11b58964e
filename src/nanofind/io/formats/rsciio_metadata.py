"""Calibration and microscope settings from the dictionaries RosettaSciIO's readers return.

Shared by the DM/TIA/EMD reader (:mod:`nanofind.io.formats.vendor`) and by vendor TIFFs
(:mod:`nanofind.io.formats.tiff`). Every value kept is a JSON-able scalar.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from nanofind.io.checks import length_in_A


def axes_pixel_size(axes: list[dict]) -> tuple[float | None, dict]:
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


def json_scalar(value):
    """A JSON-able scalar (str, int, float, bool) from a metadata value, or None."""
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


def finite_number(value, factor: float) -> float | None:
    """``value`` as a float times ``factor``, or None when it is not a finite number."""
    try:
        number = float(value) * factor
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def nested_get(node, keys):
    """``node[k0][k1]...`` through nested dictionaries, or None where a key or a dictionary is missing."""
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def microscope_settings(om: dict, md: dict) -> dict:
    """Microscope settings worth keeping, from a DM, TIA or EMD signal's ``original_metadata`` and ``metadata``."""
    meta: dict = {}
    for name, keys, factor in _METADATA_PATHS:
        node = nested_get(om, keys)
        value = finite_number(node, factor) if factor is not None else json_scalar(node)
        if value is not None and name not in meta:
            meta[name] = value
    for group in ("microscope", "sample", "user", "comments"):  # Berkeley/NCEM EMD attributes
        attrs = om.get(group)
        if isinstance(attrs, dict):
            kept = {str(k): v for k, v in ((k, json_scalar(v)) for k, v in list(attrs.items())[:50]) if v is not None}
            if kept:
                meta[f"emd_{group}"] = kept
                for key, value in kept.items():
                    match = _VOLTAGE_KEYS.match(key)
                    number = finite_number(value, 1.0)
                    if match and number and "voltage_V" not in meta:  # a bare value under 1000 is taken as kV
                        unit = (match.group(3) or "").lower()
                        meta["voltage_V"] = number * (1e3 if unit == "kv" or (not unit and number < 1e3) else 1.0)
    title = json_scalar((md.get("General") or {}).get("title")) if isinstance(md, dict) else None
    if title and "title" not in meta:
        meta["title"] = title
    json.dumps(meta)  # JSON-able by construction
    return meta
