import os
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image

from nanofind.errors import NanofindInputError
from nanofind.io import micrograph as mg
from nanofind.io.micrograph import MAX_PIXELS, MIN_SIDE_PX, SUFFIXES, Micrograph, read_micrograph

from .writers import write_dm, write_emd_ncem, write_emd_velox, write_emi, write_ser

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(100, 4000, (70, 90)).astype(np.uint16)  # rows != cols catches transposes
STACK = RNG.random((3, 72, 80)).astype(np.float32) + 1.0


def write_mrc(path, data=IMAGE, voxel=0.8):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, np.float32) if np.asarray(data).dtype == np.float64 else data)
        mrc.voxel_size = voxel


def write_tif(path, data=IMAGE):
    tifffile.imwrite(path, data, resolution=(1e8 / 0.35,) * 2, resolutionunit="CENTIMETER", photometric="minisblack")


def write_png(path, data=IMAGE):
    Image.fromarray((data // 16).astype(np.uint8)).save(path)


def write_jpeg(path, data=IMAGE):
    Image.fromarray((data // 16).astype(np.uint8)).save(path, quality=95)


# suffix -> writer of a valid 2D file of IMAGE
WRITERS = {
    ".mrc": write_mrc,
    ".tif": write_tif,
    ".png": write_png,
    ".jpg": write_jpeg,
    ".dm3": lambda p, d=IMAGE: write_dm(p, d, version=3),
    ".dm4": lambda p, d=IMAGE: write_dm(p, d, version=4),
    ".ser": write_ser,
    ".emd": write_emd_ncem,
}


def make(tmp_path, suffix, data=IMAGE, name="img"):
    path = tmp_path / f"{name}{suffix}"
    WRITERS[suffix](path, data)
    return path


def refused(path, *fragments, **kwargs):
    """The NanofindInputError that reading ``path`` raises, checking its field and message."""
    with pytest.raises(NanofindInputError) as info:
        read_micrograph(path, **kwargs)
    err = info.value
    assert err.field == str(path)
    assert Path(path).name in str(err)
    assert "\n" not in str(err)
    for fragment in fragments:
        assert fragment in err.message, err.message
    return err


# --- valid files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "pixel_A", "exact"), [
    (".mrc", 0.8, True), (".tif", 0.35, True), (".png", None, False), (".jpg", None, False),
    (".dm3", 0.5, True), (".dm4", 0.5, True), (".ser", 1.2, True), (".emd", 1.5, True)])
def test_valid_2d_files(tmp_path, suffix, pixel_A, exact):
    path = make(tmp_path, suffix)
    m = read_micrograph(path)
    assert m.array.shape == IMAGE.shape and m.array.dtype == np.float32 and m.source == path
    if pixel_A is None:
        assert m.pixel_size_A is None
    else:
        assert m.pixel_size_A == pytest.approx(pixel_A, rel=1e-6)
    if exact:
        np.testing.assert_array_equal(m.array, IMAGE.astype(np.float32))
    else:  # 8-bit (and lossy JPEG) copies of IMAGE // 16
        assert np.abs(m.array - IMAGE // 16).mean() < 2
    assert read_micrograph(path, pixel_size_A=0.25).pixel_size_A == 0.25


@pytest.mark.parametrize("suffix", [".mrc", ".tif", ".dm3", ".dm4", ".ser", ".emd"])
def test_valid_stacks(tmp_path, suffix):
    m = read_micrograph(make(tmp_path, suffix, STACK))
    assert m.array.shape == STACK.shape and m.array.dtype == np.float32
    np.testing.assert_allclose(m.array, STACK, rtol=1e-6)
    stem = m.source.stem
    # outputs of each frame are named after it; a 2D image (or a stack of one) keeps the file's stem
    assert [f.name for f in m.frames()] == [f"{stem}_frame{k:03d}" for k in range(3)]
    assert [f.name for f in Micrograph(STACK[:1], source=m.source).frames()] == [stem]
    assert m.frames()[1].frames()[0].name == f"{stem}_frame001"


def test_rosettasciio_metadata(tmp_path):
    dm = read_micrograph(make(tmp_path, ".dm3"))  # a thumbnail and the image: the thumbnail is skipped
    assert dm.metadata["voltage_V"] == 300e3 and dm.metadata["magnification"] == 5e5
    assert dm.metadata["pixel_unit"] == "nm" and dm.metadata["title"] == "particles"
    write_dm(tmp_path / "um.dm4", IMAGE, scale=2e-4, units="µm", version=4)
    assert read_micrograph(tmp_path / "um.dm4").pixel_size_A == pytest.approx(2.0, rel=1e-6)

    write_ser(tmp_path / "run_1.ser", IMAGE, pixel_m=0.9e-10)
    write_emi(tmp_path / "run.emi", voltage_kV=200, magnification=4e5)
    emi = read_micrograph(tmp_path / "run.emi")  # the .emi adds the microscope settings to its .ser
    np.testing.assert_array_equal(emi.array, IMAGE)
    assert emi.pixel_size_A == pytest.approx(0.9)
    assert emi.metadata["voltage_V"] == 200e3 and emi.metadata["magnification"] == 4e5

    write_emd_velox(tmp_path / "velox.emd", STACK, pixel_m=0.6e-10)
    velox = read_micrograph(tmp_path / "velox.emd")
    np.testing.assert_allclose(velox.array, STACK)
    assert velox.pixel_size_A == pytest.approx(0.6)
    assert velox.metadata["voltage_V"] == 300e3 and velox.metadata["detector"] == "HAADF"
    write_emd_velox(tmp_path / "contiguous.emd", IMAGE, chunked=False)  # cannot be read lazily
    np.testing.assert_array_equal(read_micrograph(tmp_path / "contiguous.emd").array, IMAGE)

    # Berkeley EMD with a spectrum first: the first 2D image is taken
    write_emd_ncem(tmp_path / "multi.emd", IMAGE, pixel=1.0, units="Å", extra=[("spectrum", np.arange(300.0))])
    multi = read_micrograph(tmp_path / "multi.emd")
    np.testing.assert_array_equal(multi.array, IMAGE)
    assert multi.pixel_size_A == pytest.approx(1.0) and multi.metadata["signals"] == 2
    assert multi.metadata["voltage_V"] == 300e3
    for m in (dm, emi, velox, multi):
        mg.metadata_json(m)


def test_emd_written_by_rosettasciio(tmp_path):
    from rsciio.emd import file_writer

    axes = [{"name": name, "size": n, "offset": 0.0, "scale": 0.02, "units": "nm", "navigate": False}
            for name, n in zip("yx", IMAGE.shape, strict=True)]
    file_writer(str(tmp_path / "hs.emd"), {"data": IMAGE, "axes": axes, "original_metadata": {},
                                           "metadata": {"General": {"title": "hs"}, "Signal": {}}})
    m = read_micrograph(tmp_path / "hs.emd")
    np.testing.assert_array_equal(m.array, IMAGE)
    assert m.pixel_size_A == pytest.approx(0.2)


def test_rgb_is_made_grey(tmp_path):
    rgb = np.stack([IMAGE // 16] * 3, axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    write_dm(tmp_path / "rgb.dm4", rgb, version=4, rgb=True)  # DM colour images cannot be read lazily
    for name in ("rgb.png", "rgb.tif", "planar.tif", "rgb.dm4"):
        m = read_micrograph(tmp_path / name)
        assert m.array.shape == IMAGE.shape
        np.testing.assert_allclose(m.array, IMAGE // 16, atol=1)


def test_suffixes_cover_the_new_formats():
    assert {".mrc", ".tif", ".png", ".jpg", ".dm3", ".dm4", ".ser", ".emd"} <= set(SUFFIXES)
    assert ".emi" not in SUFFIXES and ".emi" in mg.FORMATS  # read on request, not picked from folders


# --- damaged files, every format ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_truncated_corrupt_empty_and_text_files(tmp_path, suffix):
    valid = make(tmp_path, suffix).read_bytes()
    cut = tmp_path / f"truncated{suffix}"
    cut.write_bytes(valid[: len(valid) // 2])
    refused(cut)
    garbage = tmp_path / f"corrupt{suffix}"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    refused(garbage)
    empty = tmp_path / f"empty{suffix}"
    empty.touch()
    refused(empty, "empty file")
    text = tmp_path / f"notes{suffix}"
    text.write_text("These are my notes about the sample, not an image.\n" * 40)
    refused(text, "not a valid", "text file")


def test_header_messages(tmp_path):
    misnamed = make(tmp_path, ".png", name="misnamed").rename(tmp_path / "misnamed.jpg")
    refused(misnamed, "not a valid JPEG file", "PNG file with a .jpg name")
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(make(tmp_path, ".mrc").read_bytes()[:5000])
    refused(cut, "truncated MRC file", "90x70x1 voxels")  # nx=90 columns, ny=70 rows
    tif = tmp_path / "cut.tif"
    tif.write_bytes(make(tmp_path, ".tif").read_bytes()[:3000])
    refused(tif, "truncated TIFF file")
    ser = tmp_path / "cut.ser"
    ser.write_bytes(make(tmp_path, ".ser").read_bytes()[:3000])
    refused(ser, "truncated SER file", "90x70 pixels")
    dm = tmp_path / "version.dm3"
    dm.write_bytes(struct.pack(">iii", 5, 100, 1) + bytes(200))
    refused(dm, "not a valid DM3 file", "version field reads 5")
    header_only = tmp_path / "header.dm3"  # a real DM3 header followed by garbage
    header_only.write_bytes(struct.pack(">iii", 3, 4000, 1) + b"\x00\x01" + bytes(40) + b"\xff" * 400)
    refused(header_only, "no image in this DM3 file")
    (tmp_path / "lonely.emi").write_bytes(b"\x00" * 100)
    refused(tmp_path / "lonely.emi", "lonely_1.ser")
    (tmp_path / "plain.emd").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    refused(tmp_path / "plain.emd", "EMD")


def test_absurd_declared_sizes_are_refused_before_reading(tmp_path):
    path = tmp_path / "huge.mrc"
    header = bytearray(1024)
    struct.pack_into("<4i", header, 0, 100_000, 100_000, 1, 2)
    header[208:212] = b"MAP "
    header[212:214] = b"\x44\x44"
    path.write_bytes(bytes(header) + bytes(4096))
    start = time.perf_counter()
    refused(path, "100000x100000x1", "MAX_PIXELS", "refused before reading")
    assert time.perf_counter() - start < 1.0

    struct.pack_into("<4i", header, 0, 4000, 4000, 10, 2)  # under MAX_PIXELS but 640 MB on a 5 kB file
    path.write_bytes(bytes(header) + bytes(4096))
    refused(path, "truncated MRC file", "4000x4000x10 voxels")

    png = tmp_path / "huge.png"  # a PNG header declaring 100000 x 100000 pixels, no data
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = struct.pack(">I", 16) + b"IDAT" + bytes(16) + struct.pack(">I", zlib.crc32(b"IDAT" + bytes(16)))
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + idat)
    refused(png, "100000x100000 pixels", "MAX_PIXELS")

    tif = make(tmp_path, ".tif", name="huge")  # patch ImageWidth/ImageLength of a small TIFF
    data = bytearray(tif.read_bytes())
    with tifffile.TiffFile(tif) as t:
        offsets = [t.pages[0].tags[name].valueoffset for name in ("ImageWidth", "ImageLength")]
    for offset in offsets:
        struct.pack_into("<H", data, offset, 60_000)
    tif.write_bytes(bytes(data))
    refused(tif, "60000x60000", "MAX_PIXELS")

    ser = make(tmp_path, ".ser", name="huge")  # patch the first image's size to 100000 x 100000
    data = bytearray(ser.read_bytes())
    first = struct.unpack_from("<I", data, struct.unpack_from("<I", data, 22)[0])[0]
    struct.pack_into("<II", data, first + 42, 100_000, 100_000)
    ser.write_bytes(bytes(data))
    refused(ser, "100000x100000", "MAX_PIXELS")

    dm = tmp_path / "huge.dm3"  # DM image dimensions patched to 50000 x 50000
    write_dm(dm, IMAGE)
    patch_dm_dimensions(dm, 50_000)
    refused(dm, "50000x50000 pixels", "MAX_PIXELS")

    emd = make(tmp_path, ".emd", name="huge")  # an HDF5 dataset declared 100000 x 100000, never written
    with h5py.File(emd, "a") as f:
        del f["data/image/data"]
        f["data/image"].create_dataset("data", shape=(100_000, 100_000), dtype=np.uint16, chunks=(256, 256))
    refused(emd, "100000x100000 pixels", "MAX_PIXELS")
    velox = tmp_path / "huge_velox.emd"  # contiguous, so read eagerly: every dataset is checked first
    write_emd_velox(velox, IMAGE, chunked=False)
    with h5py.File(velox, "a") as f:
        group = f["Data/Image"][next(iter(f["Data/Image"]))]
        del group["Data"]
        group.create_dataset("Data", shape=(100_000, 100_000, 1), dtype=np.uint16)
    refused(velox, "100000x100000x1", "MAX_PIXELS")
    assert MAX_PIXELS == 2**31


def peak_traced_MB(function):
    """Peak memory (MB) that Python and numpy allocate while ``function`` runs."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def mrc_bytes(data, order, stamp, voxel_A=0.8, extended_bytes=0):
    """An MRC file of uint16 (mode 6) ``data`` written field by field in byte order ``order``."""
    rows, cols = data.shape
    header = bytearray(1024)
    struct.pack_into(order + "10i", header, 0, cols, rows, 1, 6, 0, 0, 0, cols, rows, 1)  # nx ny nz mode ... mx my mz
    struct.pack_into(order + "3f", header, 40, voxel_A * cols, voxel_A * rows, voxel_A)  # cell lengths, Å
    struct.pack_into(order + "3i", header, 64, 1, 2, 3)  # columns along x, rows along y
    struct.pack_into(order + "i", header, 92, extended_bytes)
    header[208:216] = b"MAP " + stamp
    return bytes(header) + data.astype(order + "u2").tobytes()


@pytest.mark.parametrize(("order", "stamp"), [("<", b"\x44\x44\x00\x00"), (">", b"\x11\x11\x00\x00"),
                                              (">", b"\x44\x44\x00\x00"), ("<", b"\x00\x00\x00\x00")],
                         ids=["little", "big", "big-with-little-stamp", "little-without-stamp"])
def test_mrc_byte_orders(tmp_path, order, stamp):
    # The pixels read are the ones written, whatever the byte order; a machine stamp that contradicts
    # the data (seen in the wild) is overruled by the one byte order in which the mode is valid.
    (tmp_path / "a.mrc").write_bytes(mrc_bytes(IMAGE, order, stamp))
    m = read_micrograph(tmp_path / "a.mrc")
    np.testing.assert_array_equal(m.array, IMAGE)
    assert m.pixel_size_A == pytest.approx(0.8) and m.metadata["mode"] == 6


def test_damaged_headers_allocate_nothing(tmp_path):
    # A page of text saved as .mrc: its bytes read as a header declare a ~1.7 GB extended header.
    notes = tmp_path / "notes.mrc"
    notes.write_text("These are my notes about the sample, not an image.\n" * 40)
    assert peak_traced_MB(lambda: refused(notes, "not a valid MRC file", "text file")) < 16
    huge_extended = tmp_path / "extended.mrc"
    huge_extended.write_bytes(mrc_bytes(IMAGE, "<", b"\x44\x44\x00\x00", extended_bytes=2**31 - 1))
    assert peak_traced_MB(lambda: refused(huge_extended, "truncated MRC file", "90x70x1 voxels")) < 16
    # One 30000 x 30000 uint16 image declared in a SER file of a few kB (1.8 GB if allocated).
    ser = make(tmp_path, ".ser", name="declared")
    data = bytearray(ser.read_bytes())
    first = struct.unpack_from("<I", data, struct.unpack_from("<I", data, 22)[0])[0]
    struct.pack_into("<II", data, first + 42, 30_000, 30_000)
    ser.write_bytes(bytes(data))
    assert peak_traced_MB(lambda: refused(ser, "truncated SER file", "30000x30000 pixels")) < 16


def patch_dm_dimensions(path, n):
    """Rewrite both values of the image's ImageData.Dimensions group (the last one in the file)."""
    data = bytearray(path.read_bytes())
    wide = struct.unpack_from(">i", data, 0)[0] == 4
    at = data.rindex(b"Dimensions")
    for _ in range(2):  # each value: '%%%%', number of info words, type word, then the int32
        at = data.index(b"%%%%", at + 1)
        struct.pack_into("<i", data, at + 4 + (16 if wide else 8), n)
    path.write_bytes(bytes(data))


def test_declared_data_must_fit_the_file(tmp_path):
    dm = tmp_path / "short.dm4"  # 3000 x 3000 is under MAX_PIXELS but more than the data array holds
    write_dm(dm, IMAGE, version=4)
    patch_dm_dimensions(dm, 3000)
    refused(dm, "corrupt DM4 file", "3000x3000 pixels")


# --- pixel values and sizes ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # mrcfile warns when writing them
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels(tmp_path, bad):
    image = IMAGE.astype(np.float32)
    image[5, 7] = bad
    write_mrc(tmp_path / "bad.mrc", image)
    refused(tmp_path / "bad.mrc", "1 NaN or infinite values")
    tifffile.imwrite(tmp_path / "bad.tif", image)
    refused(tmp_path / "bad.tif", "NaN or infinite values")
    write_emd_ncem(tmp_path / "bad.emd", image)
    refused(tmp_path / "bad.emd", "NaN or infinite values")


def test_constant_images(tmp_path):
    write_png(tmp_path / "flat.png", np.full((80, 80), 1600, np.uint16))
    refused(tmp_path / "flat.png", "constant image: nothing to analyse")
    stack = STACK.copy()
    stack[1] = 7.0
    write_mrc(tmp_path / "flat.mrc", stack)
    refused(tmp_path / "flat.mrc", "constant image", "frame 1 of 3")


def test_minimum_size(tmp_path):
    assert MIN_SIDE_PX == 64
    write_png(tmp_path / "small.png", IMAGE[:63, :])
    refused(tmp_path / "small.png", "63x90 pixels", "at least 64 pixels")
    write_dm(tmp_path / "small.dm3", IMAGE[:, :40])
    refused(tmp_path / "small.dm3", "70x40 pixels")
    write_png(tmp_path / "edge.png", IMAGE[:64, :64])
    assert read_micrograph(tmp_path / "edge.png").array.shape == (64, 64)


# --- paths ------------------------------------------------------------------------------------------


def test_unreadable_paths(tmp_path, monkeypatch):
    refused(tmp_path / "missing.png", "no such file")
    (tmp_path / "folder.mrc").mkdir()
    refused(tmp_path / "folder.mrc", "is a directory")
    (tmp_path / "notes.txt").write_text("x")
    refused(tmp_path / "notes.txt", "unsupported format .txt")
    locked = make(tmp_path, ".png", name="locked")
    if os.geteuid() != 0:
        locked.chmod(0)
        try:
            refused(locked, "permission denied")
        finally:
            locked.chmod(0o644)
    real_open = Path.open

    def deny(self, *args, **kwargs):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    refused(locked, "permission denied")


def test_bad_pixel_size_override(tmp_path):
    with pytest.raises(NanofindInputError, match="pixel size must be > 0") as info:
        read_micrograph(make(tmp_path, ".png"), pixel_size_A=-1)
    assert info.value.field == "--pixel-size"


def test_cli_prints_one_line(tmp_path, capsys):
    from nanofind.cli import main

    (tmp_path / "broken.dm3").write_bytes(b"\x00\x00\x00\x03" + b"\x01" * 50)
    code = main(["segment", str(tmp_path / "broken.dm3"), "-o", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[0].startswith(f"nanofind: error: {tmp_path / 'broken.dm3'}: ")
    assert "Traceback" not in "".join(err)
