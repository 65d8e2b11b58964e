"""Minimal writers for microscope formats, to make small valid test files.

DigitalMicrograph (DM3/DM4) and TIA (SER/EMI) are written from their published layouts; RosettaSciIO
reads but cannot write them. EMD files (Berkeley/NCEM 0.2 and Velox) are written with h5py. Vendor
TIFFs (FEI, Zeiss, DigitalMicrograph export, JEOL SightX) are written with tifffile, their calibration in
the tags RosettaSciIO reads.
"""

import json
import struct
import uuid

import h5py
import numpy as np
import tifffile

# --- DigitalMicrograph ------------------------------------------------------------------------------
# A tag group is a list of (name, value): a list is a sub-group, a tuple (kind, value) is a data tag.
_DM_SIMPLE = {"i4": (3, "<i4"), "u4": (5, "<u4"), "f4": (6, "<f4"), "f8": (7, "<f8"), "bool": (8, "<u1")}
_DM_ARRAY_TYPES = {np.dtype("int16"): 2, np.dtype("int32"): 3, np.dtype("uint16"): 4, np.dtype("uint32"): 5,
                   np.dtype("float32"): 6, np.dtype("float64"): 7, np.dtype("uint8"): 10}
_DM_IMAGE_TYPES = {np.dtype("int16"): 1, np.dtype("float32"): 2, np.dtype("uint8"): 6, np.dtype("int32"): 7,
                   np.dtype("uint16"): 10, np.dtype("uint32"): 11, np.dtype("float64"): 12}


def _dm_int(value, version):
    return struct.pack(">q" if version == 4 else ">i", value)


def _dm_data(kind, value, version):
    if kind == "str":  # strings are arrays of 16-bit characters
        kind, value = "array", np.frombuffer(value.encode("utf-16-le"), "<u2")
    if kind == "array":
        value = np.ascontiguousarray(value)
        info = [20, _DM_ARRAY_TYPES[value.dtype], value.size]
        payload = value.astype(value.dtype.newbyteorder("<")).tobytes()
    else:
        code, fmt = _DM_SIMPLE[kind]
        info = [code]
        payload = np.array(value, fmt).tobytes()
    body = b"%%%%" + _dm_int(len(info), version) + b"".join(_dm_int(i, version) for i in info) + payload
    return body


def _dm_group(entries, version, root=False):
    out = b"\x00\x01" + _dm_int(len(entries), version)  # sorted, open, number of tags
    for name, value in entries:
        encoded = name.encode("latin-1")
        if isinstance(value, list):
            body = _dm_group(value, version)
            tag = b"\x14"
        else:
            body = _dm_data(*value, version)
            tag = b"\x15"
        size = struct.pack(">q", len(body)) if version == 4 else b""
        out += tag + struct.pack(">h", len(encoded)) + encoded + size + body
    return out


def _dm_image(data, scale, units, name, data_type=None):
    data = np.asarray(data)
    dims = data.shape[::-1]  # DM lists x, y, z
    scales = [scale, scale] + [1.0] * (len(dims) - 2)
    unit_list = [units, units] + [""] * (len(dims) - 2)
    calibrations = [("", [("Origin", ("f4", 0.0)), ("Scale", ("f4", s)), ("Units", ("str", u))])
                    for s, u in zip(scales, unit_list, strict=True)]
    return [
        ("ImageData", [
            ("Calibrations", [("Brightness", [("Origin", ("f4", 0.0)), ("Scale", ("f4", 1.0)),
                                              ("Units", ("str", "counts"))]),
                              ("Dimension", calibrations)]),
            ("Data", ("array", data.ravel())),
            ("DataType", ("i4", data_type or _DM_IMAGE_TYPES[data.dtype])),
            ("Dimensions", [("", ("i4", n)) for n in dims]),
        ]),
        ("ImageTags", []),
        ("Name", ("str", name)),
    ]


def write_dm(path, data, scale=0.05, units="nm", version=3, voltage=300e3, magnification=5e5, rgb=False):
    """A DM3 or DM4 file: a 32x32 thumbnail and ``data`` (2D or 3D), calibrated in ``units``.

    With ``rgb``, ``data`` is (rows, cols, 3) uint8, stored as DM's 4-byte colour pixels (type 23).
    """
    thumbnail = _dm_image(np.zeros((32, 32), np.uint8), 1.0, "", "thumbnail")
    if rgb:  # B, G, R, A bytes in one little-endian uint32 per pixel
        data = np.asarray(data, np.uint32)
        data = data[..., 0] << 16 | data[..., 1] << 8 | data[..., 2] | np.uint32(255) << 24
    image = _dm_image(data, scale, units, "particles", data_type=23 if rgb else None)
    image[1] = ("ImageTags", [("Microscope Info", [("Voltage", ("f8", voltage)),
                                                   ("Indicated Magnification", ("f8", magnification)),
                                                   ("Microscope", ("str", "Test TEM"))])])
    root = [("ImageList", [("", thumbnail), ("", image)]),
            ("Thumbnails", [("", [("ImageIndex", ("u4", 0))])])]
    body = _dm_group(root, version, root=True) + b"\x00" * 8
    header = struct.pack(">i", version) + _dm_int(len(body) + (16 if version == 4 else 12), version)
    header += struct.pack(">i", 1)  # little-endian data
    with open(path, "wb") as f:
        f.write(header + body)


# --- TIA SER / EMI -------------------------------------------------------------------------------------
_SER_TYPES = {np.dtype("uint8"): 1, np.dtype("uint16"): 2, np.dtype("uint32"): 3, np.dtype("int8"): 4,
              np.dtype("int16"): 5, np.dtype("int32"): 6, np.dtype("float32"): 7, np.dtype("float64"): 8}


def write_ser(path, data, pixel_m=1.2e-10):
    """A TIA .ser series (version 0x0210) of 2D images: ``data`` is (rows, cols) or (frames, rows, cols)."""
    data = np.asarray(data)
    stack = data[None] if data.ndim == 2 else data
    n, rows, cols = stack.shape
    dims = struct.pack("<IddIII", n, 0.0, 1.0, 0, 0, 0)  # size, offset, delta, element, no description/units
    header_len = 30 + len(dims)
    table = header_len
    first = table + 8 * n  # data offsets then tag offsets, 4 bytes each
    element_len = 50 + rows * cols * stack.dtype.itemsize
    data_offsets = [first + k * element_len for k in range(n)]
    tag_offsets = [first + n * element_len + 8 * k for k in range(n)]
    out = struct.pack("<HHHIIIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, n, n, table, 1) + dims
    out += struct.pack(f"<{n}I", *data_offsets) + struct.pack(f"<{n}I", *tag_offsets)
    for frame in stack:
        out += struct.pack("<ddIddIHII", 0.0, pixel_m, 0, 0.0, pixel_m, 0, _SER_TYPES[stack.dtype], cols, rows)
        out += np.ascontiguousarray(frame[::-1]).astype(stack.dtype.newbyteorder("<")).tobytes()  # bottom row first
    for _ in range(n):
        out += struct.pack("<HHI", 0x4152, 0, 0)
    with open(path, "wb") as f:
        f.write(out)


def write_emi(path, voltage_kV=300.0, magnification=8e5):
    """A TIA .emi companion: binary padding around the <ObjectInfo> XML RosettaSciIO reads."""
    rows = [("High tension", voltage_kV, "kV"), ("Magnification", magnification, "x"), ("Microscope", "Test", "")]
    items = "".join(f"<Data><Label>{label}</Label><Value>{value}</Value><Unit>{unit}</Unit></Data>"
                    for label, value, unit in rows)
    xml = (f"<ObjectInfo><AcquireDate>Mon Jan 08 10:00:00 2024</AcquireDate><ExperimentalDescription><Root>"
           f"<Data><Label>Mode</Label><Value>TEM</Value><Unit></Unit></Data>{items}</Root>"
           "</ExperimentalDescription><AcquireInfo><DwellTimePath>1</DwellTimePath></AcquireInfo></ObjectInfo>")
    with open(path, "wb") as f:
        f.write(b"\x00" * 64 + xml.encode() + b"\x00" * 16)


# --- EMD ---------------------------------------------------------------------------------------------


def write_emd_ncem(path, data, pixel=0.15, units="nm", extra=None):
    """Berkeley/NCEM EMD 0.2: data groups with ``dimN`` datasets, data stored transposed as RosettaSciIO expects.

    ``extra`` is a list of (name, array) written (uncalibrated) before the image, e.g. a spectrum.
    """
    data = np.asarray(data)
    with h5py.File(path, "w") as f:
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        f.create_group("microscope").attrs.update({"voltage": 300, "magnification": 6e5, "name": "Test TEM"})
        top = f.create_group("data")
        groups = [(name, np.asarray(array), None) for name, array in (extra or [])] + [("image", data, pixel)]
        for name, array, step in groups:
            group = top.create_group(name)
            group.attrs["emd_group_type"] = 1
            group.create_dataset("data", data=array.T)
            # The dataset is stored transposed, so dim1 describes the last axis of ``array``.
            for k, n in enumerate(array.shape[::-1], start=1):
                frames = step is None or k > 2
                dim = group.create_dataset(f"dim{k}", data=np.arange(n) * (1.0 if frames else step))
                dim.attrs["name"] = "n" if frames else "xy"[k - 1]
                dim.attrs["units"] = "" if frames else units


def write_emd_velox(path, data, pixel_m=1.2e-10, voltage="300000", chunked=True):
    """A Velox EMD file (version 11) with one image or image stack under /Data/Image/<uuid>."""
    data = np.asarray(data)
    stack = data[None] if data.ndim == 2 else data
    metadata = {
        "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}},
        "BinaryResult": {"PixelSize": {"width": str(pixel_m), "height": str(pixel_m)}, "PixelUnitX": "m",
                         "PixelUnitY": "m", "Offset": {"x": "0", "y": "0"}, "DetectorIndex": "0",
                         "Detector": "HAADF"},
        "Detectors": {"Detector-0": {"DetectorName": "HAADF", "ExposureTime": "0.5"}},
        "Optics": {"AccelerationVoltage": voltage, "NominalMagnification": "910000"},
        "Instrument": {"InstrumentModel": "Test STEM", "InstrumentClass": "Test"},
        "Scan": {"FrameTime": "2.0"},
    }
    raw = np.frombuffer(json.dumps(metadata).encode() + b"\x00" * 8, np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=np.array([json.dumps({"format": "Velox", "version": "11"}).encode()]))
        group = f.create_group(f"Data/Image/{uuid.UUID(int=1).hex}")
        yxf = np.ascontiguousarray(np.moveaxis(stack, 0, -1))
        group.create_dataset("Data", data=yxf, chunks=(*yxf.shape[:2], 1) if chunked else None)
        group.create_dataset("Metadata", data=raw[:, None])


# --- vendor TIFFs --------------------------------------------------------------------------------------
# tifffile writes the pixels; each vendor's calibration goes in the tag RosettaSciIO reads it from.


def write_fei_tif(path, data, pixel_m=1.5e-10, databar_rows=0, **kwargs):
    """An FEI/Thermo Fisher TIFF: INI-style text in tag 34682 (FEI_HELIOS), optionally a data bar below."""
    data = np.asarray(data)
    text = (f"[User]\nDate=01/08/2024\nTime=10:00:00 AM\n[System]\nSystemType=Test FEI\n[Beam]\nHV=300000\n"
            f"[Scan]\nPixelWidth={pixel_m}\nPixelHeight={pixel_m}\nDwelltime=1e-06\n"
            f"[Detectors]\nName=HAADF\n[Image]\nResolutionX={data.shape[-1]}\n"
            f"ResolutionY={data.shape[-2] - databar_rows}\n")
    tifffile.imwrite(path, data, photometric="minisblack", extratags=[(34682, "s", 0, text, False)], **kwargs)


def write_zeiss_tif(path, data, pixel_m=4e-11):
    """A Zeiss SEM TIFF: tag 34118 (CZ_SEM), whose fourth number is the pixel size at 1024 pixels wide."""
    data = np.asarray(data)
    numbers = [0, 0, 0, pixel_m * data.shape[-1] / 1024, 500000.0]
    text = "\n".join(map(str, numbers)) + "\nAP_MAG\nMag = 500.00 K X\nAP_ACTUALKV\nEHT = 20.00 kV\n"
    text += "SV_SERIAL_NUMBER\nSerial No. = TEST-1\nDP_DETECTOR_CHANNEL\nSignal A = InLens\n"
    tifffile.imwrite(path, data, photometric="minisblack", extratags=[(34118, "s", 0, text, False)])


def write_dm_tif(path, data, scale=0.05, units="nm"):
    """A TIFF as DigitalMicrograph exports it: scale and unit in tags 65003-65010, 72 dpi (inch) resolution."""
    units = units.encode("latin-1")  # as DigitalMicrograph writes "µm"
    tags = [(65003, "s", 0, units, False), (65004, "s", 0, units, False), (65009, "d", 1, scale, False),
            (65010, "d", 1, scale, False)]
    tifffile.imwrite(path, data, photometric="minisblack", extratags=tags, resolution=(72, 72),
                     resolutionunit="INCH")


def write_jeol_tif(path, data, camera_pixel_um=15.0, magnification=500000, mode="MAG", broken=False):
    """A JEOL SightX TIFF: ``Make`` JEOL Ltd., an XML description, the camera's pixel pitch as resolution."""
    xml = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<TemReporter><Instruments>JEM-TEST</Instruments>"
           "<ElectronGun><AccelerationVoltage>200000</AccelerationVoltage><BeamCurrent>0</BeamCurrent>"
           "</ElectronGun><Eos><EosMode>eosTEM</EosMode></Eos>"
           "<IlluminationSystem><ImageField>modeBrightField</ImageField></IlluminationSystem>"
           f"<ImageFormingSystem><ImageFormingMode>modeNormal</ImageFormingMode><SelectorString>{mode}"
           f"</SelectorString><ModeString>{mode}</ModeString><SelectorValue>{magnification}</SelectorValue>"
           f"<SelectorUnitString>{'x' if mode == 'MAG' else 'cm'}</SelectorUnitString></ImageFormingSystem>"
           "</TemReporter>")
    if broken:
        xml = xml[: len(xml) // 2]
    per_cm = 1e4 / camera_pixel_um
    tifffile.imwrite(path, data, photometric="minisblack", description=xml, metadata=None,
                     resolution=(per_cm, per_cm), resolutionunit="CENTIMETER",
                     extratags=[(271, "s", 0, "JEOL Ltd.", False)])
