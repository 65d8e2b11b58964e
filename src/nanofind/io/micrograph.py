"""Micrographs: one object for an image, its pixel size and where it came from.

Arrays are float32 with rows along y (``array[row, column]``). The pixel size is in Å and is
``None`` when the file does not record it. Reading never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError

#: Length units found in micrograph metadata, in Å.
UNIT_TO_A = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "\\u00c5": 1.0, "nm": 10.0, "nanometer": 10.0, "um": 1e4,
             "µm": 1e4, "μm": 1e4, "micron": 1e4, "mm": 1e7, "cm": 1e8, "m": 1e10, "pm": 0.01}
#: File name endings :func:`read_micrograph` understands.
SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff", ".png", ".jpg", ".jpeg")


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
        """File stem, used to name outputs."""
        return self.source.stem if self.source is not None else "micrograph"

    def frames(self) -> list[Micrograph]:
        """The 2D frames (one for a 2D image)."""
        if self.array.ndim == 2:
            return [self]
        return [Micrograph(a, self.pixel_size_A, {**self.metadata, "frame": k}, self.source)
                for k, a in enumerate(self.array)]


def length_in_A(value: float, unit: str) -> float | None:
    """``value`` in ``unit`` converted to Å, or None for an unknown unit or a non-positive value."""
    factor = UNIT_TO_A.get(str(unit).strip().lower())
    if factor is None or not value or value <= 0 or not np.isfinite(value):
        return None
    return float(value) * factor


def read_micrograph(path: str | Path, pixel_size_A: float | None = None) -> Micrograph:
    """Read a micrograph file.

    Parameters
    ----------
    path : str or Path
        MRC (voxel size taken as the pixel size), TIFF (8/16/32-bit; pixel size from ImageJ
        metadata or the resolution tags), PNG or JPEG (pixel size unknown). RGB images are
        converted to grey.
    pixel_size_A : float, optional
        Overrides whatever the file says, Å.

    Raises
    ------
    NanofindInputError
        Missing, unreadable or unsupported file, naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise NanofindInputError("no such file", str(path))
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise NanofindInputError(f"unsupported format {suffix or '(none)'}; nanofind reads "
                                 + ", ".join(SUFFIXES), str(path))
    try:
        if suffix in (".mrc", ".mrcs"):
            array, pixel, meta = _read_mrc(path)
        elif suffix in (".tif", ".tiff"):
            array, pixel, meta = _read_tiff(path)
        else:
            array, pixel, meta = _read_pillow(path)
    except NanofindInputError:
        raise
    except Exception as exc:  # a corrupt file: name it, no traceback
        raise NanofindInputError(f"cannot read ({type(exc).__name__}: {exc})", str(path)) from None
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (3, 4) and suffix not in (".mrc", ".mrcs"):
        array = array[..., :3].mean(axis=-1)
    if array.ndim not in (2, 3) or min(array.shape[-2:]) < 8:
        raise NanofindInputError(f"expected a 2D image or a stack of frames, got shape {array.shape}", str(path))
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise NanofindInputError("image holds NaN or infinite values", str(path))
    if pixel_size_A is not None:
        if not pixel_size_A > 0:
            raise NanofindInputError(f"pixel size must be > 0 Å, got {pixel_size_A}", "--pixel-size")
        pixel = float(pixel_size_A)
    return Micrograph(array, pixel, meta, path)


def _read_mrc(path: Path):
    import mrcfile

    with mrcfile.open(path, permissive=True) as mrc:
        if mrc.data is None:
            raise NanofindInputError("MRC file holds no data", str(path))
        data = np.array(mrc.data)
        voxel = float(mrc.voxel_size.x)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    return data, (voxel if voxel > 0 else None), {"format": "mrc", "voxel_size_A": voxel}


def _read_tiff(path: Path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        page = tif.pages[0]
        meta = {"format": "tiff", "dtype": str(data.dtype)}
        pixel = None
        ij = tif.imagej_metadata or {}
        x_res = page.tags.get("XResolution")
        unit_tag = page.tags.get("ResolutionUnit")
        if x_res is not None:
            num, den = x_res.value
            per_unit = num / den if den else 0.0
            if per_unit > 0:
                if ij.get("unit"):
                    pixel = length_in_A(1.0 / per_unit, ij["unit"])
                elif unit_tag is not None and int(unit_tag.value) == 3:  # centimetre
                    pixel = length_in_A(1.0 / per_unit, "cm")
        if ij:
            meta["imagej"] = {k: v for k, v in ij.items() if isinstance(v, str | int | float)}
    return data, pixel, meta


def _read_pillow(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
        data = np.asarray(im.convert("I;16") if mode in ("I;16", "I;16B") else im.convert("F")
                          if mode in ("I", "F") else im.convert("L"))
    return data, None, {"format": path.suffix.lower().lstrip("."), "mode": mode}


def metadata_json(micrograph: Micrograph) -> str:
    """The micrograph's metadata as JSON (non-JSON values as strings)."""
    return json.dumps(micrograph.metadata, default=str, ensure_ascii=False)
