import csv
import json
import shutil

import numpy as np
from PIL import Image

from nanofind.analyze.pipeline import EXAMPLES_DIR
from nanofind.cli import main


def test_batch_with_bad_files_finishes_the_good_ones(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(EXAMPLES_DIR / "example_01.mrc", inputs)
    shutil.copy(EXAMPLES_DIR / "example_03.tif", inputs)
    (inputs / "corrupt.mrc").write_bytes(b"\x00\x01garbage" * 50)
    (inputs / "empty.tif").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["analyze", str(inputs), "-o", str(out), "--quiet"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    failed = {f["file"].split("/")[-1]: f["error"] for f in summary["failed"]}
    assert set(failed) == {"corrupt.mrc", "empty.tif"}
    assert all(name in error for name, error in failed.items())
    assert summary["images"] == 2 and summary["pixel_size_known"]
    rows = list(csv.DictReader(open(out / "particles.csv")))
    assert rows and {"file", "particle_id", "area_nm2", "equivalent_diameter_nm"} <= set(rows[0])
    assert all(float(r["equivalent_diameter_nm"]) > 0 for r in rows)
    for stem in ("example_01", "example_03"):
        assert (out / "overlays" / f"{stem}_overlay.png").is_file()
        mask = np.asarray(Image.open(out / "masks" / f"{stem}_mask.png"))
        assert set(np.unique(mask)) <= {0, 255}
    html = (out / "report.html").read_text()
    assert "corrupt.mrc" in html and "empty.tif" in html
    err = capsys.readouterr().err
    assert "corrupt.mrc" in err and "Traceback" not in err


def test_example_run_finds_the_simulated_particles(tmp_path):
    out = tmp_path / "demo"
    assert main(["analyze", "--example", "-o", str(out), "--quiet"]) == 0
    info = json.loads((EXAMPLES_DIR / "examples.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == len(info["files"]) and not summary["failed"]
    assert summary["settings"]["tta"] is False  # mirror averaging only when asked
    sizes = summary["size_distribution"]
    assert sizes["unit"] == "nm" and sizes["min"] <= sizes["median"] <= sizes["max"] and sizes["mean"] > 0
    rows = list(csv.DictReader(open(out / "particles.csv")))
    # the 6 nm CeO2 sphere of example_01: its equivalent diameter is within 10% of the simulated one
    first = [float(r["equivalent_diameter_nm"]) for r in rows if r["file"].endswith("example_01.mrc")]
    assert any(abs(d - 6.0) < 0.6 for d in first), first


def test_pixel_units_when_the_pixel_size_is_unknown(tmp_path):
    image = np.full((128, 128), 150, np.uint8)
    yy, xx = np.mgrid[0:128, 0:128]
    image[(yy - 64) ** 2 + (xx - 64) ** 2 <= 25**2] = 70
    image = (image + np.random.default_rng(0).normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "blob.png")
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "blob.png"), "-o", str(out), "--tta", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["pixel_size_known"] and summary["size_distribution"]["unit"] == "px"
    assert summary["settings"]["tta"] is True
    (row,) = list(csv.DictReader(open(out / "particles.csv")))
    assert row["equivalent_diameter_nm"] == "" and abs(float(row["equivalent_diameter_px"]) - 50) < 5


def test_no_inputs_is_a_usage_error(tmp_path):
    assert main(["analyze", "-o", str(tmp_path / "x")]) == 2
    assert main(["analyze", str(tmp_path / "missing-dir-or-file.mrc"), "-o", str(tmp_path / "y"), "--quiet"]) == 1


def test_resume_reuses_finished_files(tmp_path, monkeypatch):
    import nanofind.analyze.pipeline as pipeline

    out = tmp_path / "out"
    assert main(["analyze", "--example", "-o", str(out), "--quiet"]) == 0
    first = (out / "particles.csv").read_text()

    def no_analysis(*args, **kwargs):
        raise AssertionError("a finished file was analysed again")

    monkeypatch.setattr(pipeline, "_analyze_file", no_analysis)
    assert main(["analyze", "--example", "-o", str(out), "--resume", "--quiet"]) == 0
    assert (out / "particles.csv").read_text() == first
    # other settings: nothing is reused (the stub fails every file, so the batch reports failures)
    assert main(["analyze", "--example", "-o", str(out), "--resume", "--min-area", "2", "--quiet"]) == 1
