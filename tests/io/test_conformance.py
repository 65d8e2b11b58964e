"""Real files from microscopes and vendor software, read as RosettaSciIO reads them.

The files live outside the repository, in ``../shared/data/formats/`` next to the checkout (or in
``$NANOFIND_FORMATS_DIR``); their README gives the expected readings. Without the folder every test
here is skipped, so a clone elsewhere still passes.
"""

import gc
import os
from pathlib import Path

import pytest

from nanofind.io import read_micrograph

FORMATS_DIR = Path(os.environ.get("NANOFIND_FORMATS_DIR")
                   or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "formats")
if not FORMATS_DIR.is_dir():
    pytest.skip(f"no conformance files in {FORMATS_DIR} (set NANOFIND_FORMATS_DIR)", allow_module_level=True)

# file, shape (rows, columns), pixel size (Å), where the pixel size comes from (None: not a TIFF)
EXPECTED = [
    ("tiff_saved_with_DM.tif", (68, 68), 1686.75, "rsciio tiff (DigitalMicrograph tags)"),
    ("tiff_FEI_Helios_16bit.tif", (471, 512), 33724.0, "rsciio tiff (FEI metadata)"),
    ("tiff_Zeiss_SEM_512.tif", (384, 512), 116.49976, "rsciio tiff (Zeiss CZ_SEM tag)"),
    ("tiff_ImageJ_scaled.tif", (68, 68), 1686.75, "ImageJ metadata"),
    ("dm3_multi_signal.dm3", (512, 512), 0.17752, None),
    ("tia_TEM_search_1.ser", (128, 128), 52.6121, None),
    ("tia_TEM_search.emi", (128, 128), 52.6121, None),
]


def conformance_file(name):
    path = FORMATS_DIR / name
    if not path.is_file():
        pytest.skip(f"{name} is not in {FORMATS_DIR}")
    return path


@pytest.mark.parametrize(("name", "shape", "pixel_A", "source"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_real_files(name, shape, pixel_A, source):
    if name.endswith(".emi"):
        conformance_file("tia_TEM_search_1.ser")
    micrograph = read_micrograph(conformance_file(name))
    assert micrograph.array.shape == shape
    assert micrograph.pixel_size_A == pytest.approx(pixel_A, rel=1e-4)
    if source is not None:
        assert micrograph.metadata["pixel_size_source"] == source


@pytest.mark.parametrize("name", [e[0] for e in EXPECTED if e[0].endswith(".tif")])
def test_tiff_shape_is_rosettasciio_shape(name):
    """tifffile reads the pixels: its image must be the one RosettaSciIO (the reference reader) gives."""
    from rsciio.tiff import file_reader

    path = conformance_file(name)
    signals = file_reader(str(path), lazy=True)
    expected = tuple(signals[0]["data"].shape)
    del signals
    gc.collect()  # the lazy reader keeps the file open until collected
    assert read_micrograph(path).array.shape == expected


def test_vendor_settings_are_kept():
    fei = read_micrograph(conformance_file("tiff_FEI_Helios_16bit.tif")).metadata
    assert fei["vendor"] == "FEI" and fei["voltage_V"] == 5000.0 and "Helios" in fei["microscope"]
    assert fei["data_bar_rows"] == 29  # 442 image rows, then the data bar: the image is not cropped
    zeiss = read_micrograph(conformance_file("tiff_Zeiss_SEM_512.tif")).metadata
    assert zeiss["vendor"] == "Zeiss" and zeiss["voltage_V"] == 5000.0 and zeiss["magnification"] == 50000.0
    dm = read_micrograph(conformance_file("tiff_saved_with_DM.tif")).metadata
    assert dm["vendor"] == "DigitalMicrograph" and dm["pixel_unit"] == "µm"


def test_tia_search_image_is_analysed_with_a_scale_warning(tmp_path):
    # 52.6 Å per pixel: far outside the HRTEM model's range; bounded resampling, a warning, no blow-up
    import json
    import shutil

    from nanofind.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("tia_TEM_search_1.ser", "tia_TEM_search.emi"):
        shutil.copy(conformance_file(name), folder)
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "-o", str(out), "--model", "hrtem", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (image,) = summary["per_image"]
    assert image["pixel_size_A"] == pytest.approx(52.6121, rel=1e-4) and image["zoom"] == 4.0
    (warning,) = summary["warnings"]
    assert "52.6121 Å is far outside" in warning["warning"]
    assert summary["size_distribution_excludes"] == []  # nothing else to take the sizes from
    # --model auto (the default) gives a low-magnification image to the bright-field model, which says that
    # 52.6 Å is just beyond the 1-50 Å it was trained on
    auto = tmp_path / "auto"
    assert main(["analyze", str(folder), "-o", str(auto), "--quiet"]) == 0
    summary = json.loads((auto / "summary.json").read_text())
    assert summary["per_image"][0]["model"]["model"] == "lowmag"
    (warning,) = summary["warnings"]
    assert "outside the 1–50 Å the bright-field model was trained on" in warning["warning"]
