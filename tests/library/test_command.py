"""``nanofind library build`` and ``nanofind match`` end to end, with the bundled examples."""

import csv
import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from nanofind.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "nanofind" / "library" / "examples"
LIBRARY = EXAMPLES / "library-small.h5"


@pytest.fixture(scope="module")
def matched(tmp_path_factory):
    out = tmp_path_factory.mktemp("match")
    assert main(["match", str(EXAMPLES / "cdte_110.tif"), "--library", str(LIBRARY), "-o", str(out), "--top", "5",
                 "--quiet"]) == 0
    return out


def test_the_bundled_query_finds_cdte_110_first(matched):
    rows = list(csv.DictReader(open(matched / "matches.csv")))
    assert list(rows[0]) == ["query", "rank", "prototype", "formula", "zone", "ssim", "emd", "mse"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"]
    best = rows[0]
    assert (best["prototype"], best["formula"], best["zone"]) == ("zincblende", "CdTe", "[1 1 0]")
    # the true entry fits much better than the runner-up by every metric
    assert float(best["ssim"]) > float(rows[1]["ssim"]) + 0.2
    assert float(best["emd"]) < float(rows[1]["emd"]) and float(best["mse"]) < float(rows[1]["mse"])
    record = json.loads((matched / "cdte_110_match.json").read_text())
    truth = json.loads((EXAMPLES / "examples.json").read_text())["cdte_110.tif"]["conditions"]
    first = record["matches"][0]
    assert abs(first["pixel_size_A"] - truth["pixel_size_A"]) < 0.003
    # its tilt smears the columns by 45 Å × tan 0.5° = 0.39 Å (the fit's grid steps are 0.25 Å)
    smear_A = truth["thickness_A"] * math.tan(math.radians(truth["tilt_deg"]))
    assert abs(first["smear_A"] - smear_A) <= 0.4 and 0 <= first["smear_deg"] < 180
    assert record["convincing"] is True
    assert (matched / "cdte_110_matches.png").stat().st_size > 10_000


def test_a_query_with_a_burned_in_scale_bar_still_finds_cdte_110_first(tmp_path):
    with tifffile.TiffFile(EXAMPLES / "cdte_110.tif") as tif:
        image = tif.asarray().astype(np.float32)
        resolution = tif.pages[0].tags["XResolution"].value
    image[-30:-24, 20:140] = image.max() * 1.2  # a scale bar as exports draw it, lower left
    source = tmp_path / "labelled.tif"
    tifffile.imwrite(source, image, imagej=True, resolution=(resolution, resolution), metadata={"unit": "nm"})
    assert main(["match", str(source), "--library", str(LIBRARY), "-o", str(tmp_path / "out"), "--top", "3",
                 "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "labelled_match.json").read_text())
    assert record["annotations_left_out"]["boxes_px"] == [[image.shape[0] - 30, 20, image.shape[0] - 24, 140]]
    best = record["matches"][0]
    assert (best["prototype"], best["zone"]) == ("zincblende", "[1 1 0]")


def test_a_rerun_reuses_the_record(matched, capsys):
    before = (matched / "cdte_110_match.json").stat().st_mtime_ns
    assert main(["match", str(EXAMPLES / "cdte_110.tif"), "--library", str(LIBRARY), "-o", str(matched),
                 "--top", "5"]) == 0
    assert "done before" in capsys.readouterr().err
    assert (matched / "cdte_110_match.json").stat().st_mtime_ns == before


def test_window_maps_the_two_sides_of_the_interface(tmp_path):
    assert main(["match", str(EXAMPLES / "interface.tif"), "--library", str(LIBRARY), "-o", str(tmp_path),
                 "--window", "256", "--top", "1", "--quiet"]) == 0
    boundary = json.loads((EXAMPLES / "examples.json").read_text())["interface.tif"]["boundary_x_px"]
    tiles = list(csv.DictReader(open(tmp_path / "interface_motifs.csv")))
    left = [t for t in tiles if float(t["x_px"]) + 128 <= boundary]
    right = [t for t in tiles if float(t["x_px"]) - 128 >= boundary]
    assert left and right
    assert all((t["prototype"], t["formula"], t["zone"]) == ("zincblende", "CdTe", "[1 1 0]") for t in left)
    assert all((t["prototype"], t["formula"], t["zone"]) == ("perovskite", "SrTiO3", "[1 0 0]") for t in right)
    assert (tmp_path / "interface_motifs.png").is_file()


def test_an_image_without_a_lattice_has_no_convincing_match(tmp_path, capsys):
    noise = tmp_path / "film.tif"
    tifffile.imwrite(noise, np.random.default_rng(2).normal(100, 10, (256, 256)).astype(np.float32))
    assert main(["match", str(noise), "--library", str(LIBRARY), "-o", str(tmp_path), "--pixel-size", "0.1"]) == 0
    assert "no convincing match" in capsys.readouterr().err
    record = json.loads((tmp_path / "film_match.json").read_text())
    assert record["convincing"] is False and record["matches"][0]["ssim"] < 0.3


def test_library_build_command(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("max_index: 1\nprototypes:\n  builtin: [fcc, rocksalt]\n  formulas: [Au, MgO]\n")
    assert main(["library", "build", str(spec), "-o", str(tmp_path / "lib.h5"), "--workers", "1", "--quiet"]) == 0
    assert "6 entries (2 structure types, 2 materials, haadf)" in capsys.readouterr().out
    assert not (tmp_path / "lib.h5.parts").exists()


def _one_line_exit_2(capsys, argv, *words):
    assert main([*argv, "--quiet"] if argv[0] == "match" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    noise = tmp_path / "noise.tif"
    tifffile.imwrite(noise, np.random.default_rng(0).normal(100, 10, (256, 256)).astype(np.float32))
    _one_line_exit_2(capsys, ["match", str(noise), "--library", str(LIBRARY), "-o", str(tmp_path / "o")],
                     "noise.tif", "pixel size")
    old = tmp_path / "old.h5"
    shutil.copy(LIBRARY, old)
    with h5py.File(old, "a") as f:
        f.attrs["version"] = 99
    _one_line_exit_2(capsys, ["match", str(EXAMPLES / "cdte_110.tif"), "--library", str(old), "-o",
                              str(tmp_path / "o")], "old.h5", "version 99")
    broken = tmp_path / "broken.h5"
    broken.write_bytes(LIBRARY.read_bytes()[:5000])
    _one_line_exit_2(capsys, ["match", str(EXAMPLES / "cdte_110.tif"), "--library", str(broken), "-o",
                              str(tmp_path / "o")], "broken.h5")
    query = str(EXAMPLES / "cdte_110.tif")
    _one_line_exit_2(capsys, ["match", query, "--library", str(LIBRARY), "-o", str(tmp_path / "o"), "--pixel-size",
                              "50"], "too coarse")
    _one_line_exit_2(capsys, ["match", query, "--library", str(LIBRARY), "-o", str(tmp_path / "o"), "--pixel-size",
                              "0.03"], "too small")
    _one_line_exit_2(capsys, ["match", query, "--library", str(LIBRARY), "-o", str(tmp_path / "o"), "--window",
                              "64"], "--window", "at least 20")
    big = tmp_path / "big.tif"
    noise = np.random.default_rng(1).integers(0, 255, (4096, 4096), dtype=np.uint8)
    tifffile.imwrite(big, noise, imagej=True, resolution=(100, 100), metadata={"unit": "nm"})  # 0.1 Å px
    _one_line_exit_2(capsys, ["match", str(big), "--library", str(LIBRARY), "-o", str(tmp_path / "o"), "--window",
                              "200"], "--window", "tiles")
    spec = tmp_path / "spec.yaml"
    spec.write_text("max_index: 1\nprototypes:\n  builtin: [fcc, quasicrystal]\n")
    _one_line_exit_2(capsys, ["library", "build", str(spec), "-o", str(tmp_path / "x.h5")], "quasicrystal")
