"""TIFF specifics: compressed TIFFs, and where the pixel size comes from (vendor tags, ImageJ, resolution)."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nanofind.io import micrograph as mg
from nanofind.io.formats import tiff as tiff_format
from nanofind.io.micrograph import read_micrograph

from .test_micrograph import IMAGE, STACK, refused, write_tif
from .writers import write_dm_tif, write_fei_tif, write_jeol_tif, write_zeiss_tif

IMAGE8 = (IMAGE // 16).astype(np.uint8)

# --- compressed TIFFs (imagecodecs) ------------------------------------------------------------------


@pytest.mark.parametrize(("compression", "data", "options"), [
    ("lzw", IMAGE, {}),
    ("lzw", IMAGE, {"predictor": True}),  # horizontal differencing, as many writers add to LZW
    ("zlib", IMAGE8, {}),  # Adobe Deflate (8)
    ("deflate", IMAGE, {}),  # old-style Deflate (32946)
    ("zlib", STACK, {"predictor": True}),  # floating-point predictor
    ("zstd", IMAGE, {}),
    ("zstd", STACK, {"tile": (32, 32)}),
    ("lzma", IMAGE, {}),
    ("packbits", IMAGE8, {}),
], ids=["lzw", "lzw-predictor", "adobe-deflate", "deflate", "zlib-float-stack", "zstd", "zstd-tiled", "lzma",
        "packbits"])
def test_lossless_compressed_tiffs(tmp_path, compression, data, options):
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, data, compression=compression, photometric="minisblack", **options)
    m = read_micrograph(path)
    np.testing.assert_array_equal(m.array, data.astype(np.float32))
    assert m.metadata["compression"] == {"zlib": "adobe_deflate"}.get(compression, compression)


def test_jpeg_compressed_tiffs(tmp_path):
    tifffile.imwrite(tmp_path / "jpeg.tif", IMAGE8, compression="jpeg", photometric="minisblack")
    m = read_micrograph(tmp_path / "jpeg.tif")
    assert m.array.shape == IMAGE.shape and m.metadata["compression"] == "jpeg"
    assert np.abs(m.array - IMAGE8).mean() < 3  # lossy
    assert np.corrcoef(m.array.ravel(), IMAGE8.ravel())[0, 1] > 0.99
    rgb = np.stack([IMAGE8] * 3, axis=-1)  # colour JPEG (YCbCr) is made grey
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, compression="jpeg", photometric="rgb")
    m = read_micrograph(tmp_path / "rgb.tif")
    assert m.array.shape == IMAGE.shape and np.abs(m.array - IMAGE8).mean() < 3


@pytest.mark.parametrize("compression", ["jpeg", "lzw", "zlib", "zstd"])
def test_damaged_compressed_tiffs(tmp_path, compression):
    path = tmp_path / "valid.tif"
    tifffile.imwrite(path, IMAGE8, compression=compression, photometric="minisblack")
    valid = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(valid[: len(valid) // 2])
    refused(cut, "truncated TIFF file", "70x90 uint8 values")
    cut.write_bytes(valid[:-10])
    refused(cut, "truncated TIFF file")
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages.first.dataoffsets[0], tif.pages.first.databytecounts[0]
    garbled = bytearray(valid)  # same length, compressed bytes replaced by noise
    garbled[offset + 2: offset + count] = np.random.default_rng(2).integers(0, 256, count - 2, np.uint8).tobytes()
    (tmp_path / "garbled.tif").write_bytes(bytes(garbled))
    refused(tmp_path / "garbled.tif", "corrupt TIFF file", "compressed image data cannot be decoded")


def test_compressed_tiff_without_imagecodecs(tmp_path):
    for compression in ("jpeg", "zstd"):
        tifffile.imwrite(tmp_path / f"{compression}.tif", IMAGE8, compression=compression, photometric="minisblack")
    script = ("import sys; sys.modules['imagecodecs'] = None\n"  # as if imagecodecs were not installed
              "from nanofind.errors import NanofindInputError\nfrom nanofind.io import read_micrograph\n"
              "for path in sys.argv[1:]:\n"
              "    try:\n        read_micrograph(path)\n"
              "    except NanofindInputError as exc:\n        print(exc.message)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "jpeg.tif"), str(tmp_path / "zstd.tif")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == 2, out
    for line, name in zip(out, ("JPEG", "ZSTD"), strict=True):
        assert f"reading this {name}-compressed TIFF file needs the Python package imagecodecs" in line


# --- pixel size: ImageJ and resolution tags ------------------------------------------------------------


def test_imagej_and_resolution_calibrations(tmp_path):
    write_tif(tmp_path / "cm.tif")  # 1e8/0.35 pixels per cm
    m = read_micrograph(tmp_path / "cm.tif")
    assert m.pixel_size_A == pytest.approx(0.35, rel=1e-9)
    assert m.metadata["pixel_size_source"] == "TIFF resolution tags (pixels per centimetre)"
    for unit, per_unit, pixel_A in (("nm", 1 / 0.05, 0.5), ("micron", 1e4 / 0.5, 0.5), ("\\u00c5", 1 / 0.7, 0.7)):
        tifffile.imwrite(tmp_path / "ij.tif", IMAGE, imagej=True, resolution=(per_unit, per_unit),
                         metadata={"unit": unit})
        m = read_micrograph(tmp_path / "ij.tif")
        assert m.pixel_size_A == pytest.approx(pixel_A, rel=1e-6), unit
        assert m.metadata["pixel_size_source"] == "ImageJ metadata" and "vendor" not in m.metadata
    tifffile.imwrite(tmp_path / "stack.tif", STACK, imagej=True, resolution=(20, 20), metadata={"unit": "nm"})
    assert read_micrograph(tmp_path / "stack.tif").pixel_size_A == pytest.approx(0.5)


@pytest.mark.parametrize(("resolution", "unit", "imagej_unit"), [
    ((72, 72), "INCH", None),  # ordinary image software
    ((300, 300), "INCH", None),
    ((72, 72), "INCH", "inch"),  # ImageJ keeps a dpi as unit=inch
    ((1, 1), "NONE", None),
    (None, None, None),
    ((5, 5), None, "pixel"),
])
def test_printing_resolutions_are_not_pixel_sizes(tmp_path, resolution, unit, imagej_unit):
    kwargs = {"resolution": resolution, "resolutionunit": unit} if resolution else {}
    if imagej_unit:
        kwargs.update(imagej=True, metadata={"unit": imagej_unit})
    else:
        kwargs.update(photometric="minisblack")
    tifffile.imwrite(tmp_path / "dpi.tif", IMAGE, **kwargs)
    m = read_micrograph(tmp_path / "dpi.tif")
    assert m.pixel_size_A is None and "pixel_size_source" not in m.metadata


def test_override_is_recorded(tmp_path):
    write_tif(tmp_path / "cm.tif")
    m = read_micrograph(tmp_path / "cm.tif", pixel_size_A=0.25)
    assert m.pixel_size_A == 0.25 and m.metadata["pixel_size_source"].startswith("given")


# --- pixel size: vendor tags through RosettaSciIO -------------------------------------------------------


def test_fei_tiff(tmp_path):
    data = IMAGE.copy()
    write_fei_tif(tmp_path / "fei.tif", data, pixel_m=1.5e-10, databar_rows=6)
    m = read_micrograph(tmp_path / "fei.tif")
    np.testing.assert_array_equal(m.array, data)  # the data bar is kept, and counted
    assert m.pixel_size_A == pytest.approx(1.5, rel=1e-9)
    meta = m.metadata
    assert meta["vendor"] == "FEI" and meta["pixel_size_source"] == "rsciio tiff (FEI metadata)"
    assert meta["voltage_V"] == 300e3 and meta["microscope"] == "Test FEI" and meta["detector"] == "HAADF"
    assert meta["data_bar_rows"] == 6 and meta["acquisition_date"] == "01/08/2024"
    mg.metadata_json(m)


def test_zeiss_tiff(tmp_path):
    write_zeiss_tif(tmp_path / "zeiss.tif", IMAGE, pixel_m=4e-11)
    m = read_micrograph(tmp_path / "zeiss.tif")
    assert m.pixel_size_A == pytest.approx(0.4, rel=1e-6)
    meta = m.metadata
    assert meta["vendor"] == "Zeiss" and meta["pixel_size_source"] == "rsciio tiff (Zeiss CZ_SEM tag)"
    assert meta["voltage_V"] == 20e3 and meta["magnification"] == 500e3 and meta["microscope"] == "TEST-1"
    mg.metadata_json(m)


def test_digitalmicrograph_tiff(tmp_path):
    write_dm_tif(tmp_path / "dm.tif", IMAGE, scale=0.05, units="nm")  # 72 dpi as well: the DM tags win
    m = read_micrograph(tmp_path / "dm.tif")
    assert m.pixel_size_A == pytest.approx(0.5, rel=1e-9)
    assert m.metadata["pixel_size_source"] == "rsciio tiff (DigitalMicrograph tags)"
    write_dm_tif(tmp_path / "um.tif", STACK, scale=2e-4, units="µm")
    m = read_micrograph(tmp_path / "um.tif")
    assert m.array.shape == STACK.shape and m.pixel_size_A == pytest.approx(2.0, rel=1e-9)


def test_jeol_tiff(tmp_path):
    write_jeol_tif(tmp_path / "jeol.tif", IMAGE, camera_pixel_um=15.0, magnification=500000)
    m = read_micrograph(tmp_path / "jeol.tif")  # 15 µm on the camera at 500000x: 0.3 Å
    assert m.pixel_size_A == pytest.approx(0.3, rel=1e-6)
    meta = m.metadata
    assert meta["vendor"] == "JEOL" and meta["magnification"] == 500000 and meta["voltage_V"] == 200e3
    assert meta["microscope"] == "JEM-TEST"
    # The resolution tags of a JEOL file are the camera's: never the specimen's pixel size.
    write_jeol_tif(tmp_path / "diffraction.tif", IMAGE, magnification=80, mode="DIFF")
    m = read_micrograph(tmp_path / "diffraction.tif")
    assert m.pixel_size_A is None and m.metadata["pixel_unit"] == "1 / nm"
    write_jeol_tif(tmp_path / "broken.tif", IMAGE, broken=True)
    m = read_micrograph(tmp_path / "broken.tif")
    assert m.pixel_size_A is None and "rsciio_error" in m.metadata


def test_rosettasciio_failure_falls_back(tmp_path, monkeypatch):
    import rsciio.tiff

    def broken(*args, **kwargs):
        raise RuntimeError("cannot parse this")

    monkeypatch.setattr(rsciio.tiff, "file_reader", broken)
    write_fei_tif(tmp_path / "fei.tif", IMAGE, imagej=True, resolution=(1 / 0.08, 1 / 0.08),
                  metadata={"unit": "nm"})
    m = read_micrograph(tmp_path / "fei.tif")
    np.testing.assert_array_equal(m.array, IMAGE)
    assert m.pixel_size_A == pytest.approx(0.8) and m.metadata["pixel_size_source"] == "ImageJ metadata"
    assert "RuntimeError: cannot parse this" in m.metadata["rsciio_error"]
    write_dm_tif(tmp_path / "dm.tif", IMAGE)  # only 72 dpi left: no pixel size
    m = read_micrograph(tmp_path / "dm.tif")
    assert m.pixel_size_A is None and m.metadata["vendor"] == "DigitalMicrograph"


def test_plain_tiffs_do_not_consult_rosettasciio(tmp_path, monkeypatch):
    import rsciio.tiff

    def forbidden(*args, **kwargs):
        raise AssertionError("RosettaSciIO consulted for a plain TIFF")

    monkeypatch.setattr(rsciio.tiff, "file_reader", forbidden)
    write_tif(tmp_path / "plain.tif")
    tifffile.imwrite(tmp_path / "ij.tif", IMAGE, imagej=True, resolution=(20, 20), metadata={"unit": "nm"})
    for name in ("plain.tif", "ij.tif"):
        m = read_micrograph(tmp_path / name)
        assert m.pixel_size_A is not None and "rsciio_error" not in m.metadata and "vendor" not in m.metadata


def test_vendor_tags_are_recognised(tmp_path):
    writers = {"FEI": write_fei_tif, "Zeiss": write_zeiss_tif, "DigitalMicrograph": write_dm_tif,
               "JEOL": write_jeol_tif}
    for vendor, write in writers.items():
        write(tmp_path / f"{vendor}.tif", IMAGE)
        with tifffile.TiffFile(tmp_path / f"{vendor}.tif") as tif:
            assert tiff_format.tiff_vendor(tif.pages.first) == vendor
    write_tif(tmp_path / "plain.tif")
    with tifffile.TiffFile(tmp_path / "plain.tif") as tif:
        assert tiff_format.tiff_vendor(tif.pages.first) is None


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_vendor_tiff_is_closed_after_reading(tmp_path):
    write_fei_tif(tmp_path / "fei.tif", IMAGE)
    target = str((tmp_path / "fei.tif").resolve())
    gc.disable()  # the lazy reader's objects form cycles: the file must be closed without the collector
    try:
        read_micrograph(tmp_path / "fei.tif")
        still_open = [fd for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == target]
    finally:
        gc.enable()
    assert not still_open
