"""The suffix -> reader registry: a new format read through read_micrograph gets every common check."""

import struct
from pathlib import Path

import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.io import SUFFIXES, read_micrograph, register_reader
from nanofind.io.checks import check_extent, check_pixels
from nanofind.io.files import not_valid
from nanofind.io.registry import folder_suffixes, format_for, format_names, registered_suffixes, unregister_reader

from .test_micrograph import IMAGE, refused

MAGIC = b"R16\x00"


def read_raw16(path, *, size_bytes, head, format_name):
    """A made-up format: magic, rows and columns (uint32), pixel size (float32, Å), then uint16 pixels."""
    if not head.startswith(MAGIC):
        raise not_valid(path, format_name, "no R16 magic", head)
    rows, cols, pixel_A = struct.unpack_from("<IIf", head, 4)
    what = f"{rows}x{cols} pixels"
    check_pixels(path, format_name=format_name, n_pixels=rows * cols, what=what)
    check_extent(path, format_name=format_name, end_byte=16 + 2 * rows * cols, size_bytes=size_bytes, what=what)
    data = np.fromfile(path, "<u2", count=rows * cols, offset=16).reshape(rows, cols)
    return data, float(pixel_A), {"format": "raw16"}


def write_raw16(path, data, pixel_A=0.7, rows=None, cols=None):
    rows, cols = rows or data.shape[0], cols or data.shape[1]
    path.write_bytes(MAGIC + struct.pack("<IIf", rows, cols, pixel_A) + data.astype("<u2").tobytes())


@pytest.fixture
def raw16():
    register_reader((".r16", ".R16B"), read_raw16, format_name="RAW16")
    yield
    unregister_reader((".r16", ".r16b"))


def test_a_registered_reader_is_used(tmp_path, raw16):
    write_raw16(tmp_path / "a.r16", IMAGE)
    m = read_micrograph(tmp_path / "a.r16")
    np.testing.assert_array_equal(m.array, IMAGE)
    assert m.array.dtype == np.float32 and m.pixel_size_A == pytest.approx(0.7)
    write_raw16(tmp_path / "upper.R16B", IMAGE)  # suffixes match in any case
    assert read_micrograph(tmp_path / "upper.R16B").array.shape == IMAGE.shape
    assert format_names()[".r16b"] == "RAW16" and {".r16", ".r16b"} <= set(folder_suffixes())


def test_a_registered_reader_gets_the_common_checks(tmp_path, raw16):
    write_raw16(tmp_path / "flat.r16", np.full((80, 80), 9))
    refused(tmp_path / "flat.r16", "constant image")
    write_raw16(tmp_path / "small.r16", IMAGE[:30])
    refused(tmp_path / "small.r16", "30x90 pixels", "at least 64")
    write_raw16(tmp_path / "cut.r16", IMAGE[:60], rows=70)
    refused(tmp_path / "cut.r16", "truncated RAW16 file", "70x90 pixels")
    write_raw16(tmp_path / "big.r16", IMAGE)  # 6300 pixels, over a 5000-pixel memory limit
    refused(tmp_path / "big.r16", "RAW16 header declares 70x90 pixels", "memory limit", max_pixels=5000)
    (tmp_path / "notes.r16").write_text("a text file, not an image\n" * 10)
    refused(tmp_path / "notes.r16", "not a valid RAW16 file", "text file")
    (tmp_path / "empty.r16").touch()
    refused(tmp_path / "empty.r16", "empty file")


def test_a_library_exception_becomes_one_line(tmp_path):
    def broken(path, *, size_bytes, head, format_name):
        raise KeyError("tag 42\nmissing")

    register_reader((".brk",), broken, format_name="BROKEN")
    try:
        (tmp_path / "x.brk").write_bytes(b"\x01" * 100)
        refused(tmp_path / "x.brk", "cannot read: not a valid BROKEN file", "KeyError")
    finally:
        unregister_reader((".brk",))
    assert format_for(tmp_path / "x.brk") is None
    refused(tmp_path / "x.brk", "unsupported format .brk")


def test_registration_rules():
    assert ".emi" in registered_suffixes() and ".emi" not in folder_suffixes()
    assert SUFFIXES == (".mrc", ".mrcs", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".ser", ".emd")
    assert set(SUFFIXES) <= set(folder_suffixes())
    with pytest.raises(ValueError, match="already has a reader"):
        register_reader((".mrc",), read_raw16, format_name="RAW16")
    assert format_for(Path("a.mrc")).format_name == "MRC"  # unchanged by the refusal
    with pytest.raises(ValueError, match="starts with a dot"):
        register_reader(("r16",), read_raw16, format_name="RAW16")
    assert "r16" not in registered_suffixes()


def test_replacing_a_reader(tmp_path):
    from nanofind.io.formats import read_pillow

    write_raw16(tmp_path / "a.png", IMAGE)  # a RAW16 file named .png: the built-in reader refuses it
    refused(tmp_path / "a.png", "not a valid PNG file")
    register_reader((".png",), read_raw16, format_name="RAW16", replace=True)
    try:
        assert read_micrograph(tmp_path / "a.png").pixel_size_A == pytest.approx(0.7)
    finally:
        register_reader((".png",), read_pillow, format_name="PNG", replace=True)
    with pytest.raises(NanofindInputError, match="not a valid PNG file"):
        read_micrograph(tmp_path / "a.png")
