import csv
import json
import shutil

import numpy as np
import pytest
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


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """A serial analysis of the bundled examples (read only: copy it to change it)."""
    out = tmp_path_factory.mktemp("examples") / "demo"
    assert main(["analyze", "--example", "-o", str(out), "--quiet"]) == 0
    return out


def test_example_run_finds_the_simulated_particles(example_run):
    out = example_run
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
    # every classified particle carries its five class probabilities; the population fractions are their sums
    classified = [r for r in rows if r["defect_class"]]
    assert classified
    names = ("fault", "no_fault", "misoriented", "agglomerate", "empty")
    p = np.array([[float(r[f"p_{c}"]) for c in names] for r in classified])
    assert np.allclose(p.sum(axis=1), 1, atol=3e-4)
    assert [r["defect_class"] for r in classified] == [names[k] for k in p.argmax(axis=1)]
    assert np.allclose([float(r["defect_probability"]) for r in classified], p.max(axis=1))
    defects = summary["defect_classes"]
    assert defects["classified"] == len(classified) and defects["estimator"].startswith("expected counts")
    on_axis = p[:, 0] + p[:, 1]
    assert defects["on_zone_axis_fraction"]["value"] == pytest.approx(on_axis.sum() / (on_axis + p[:, 2]).sum(),
                                                                      abs=2e-3)


def test_pixel_units_when_the_pixel_size_is_unknown(tmp_path):
    image = np.full((128, 128), 150, np.uint8)
    yy, xx = np.mgrid[0:128, 0:128]
    image[(yy - 64) ** 2 + (xx - 64) ** 2 <= 25**2] = 70
    image = (image + np.random.default_rng(0).normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "blob.png")
    out = tmp_path / "out"
    # a dark disc on a flat film: a bright-field image, named so (a 128² field is too small for --model auto to judge)
    assert main(["analyze", str(tmp_path / "blob.png"), "-o", str(out), "--tta", "--model", "lowmag", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["pixel_size_known"] and summary["size_distribution"]["unit"] == "px"
    assert summary["settings"]["tta"] is True
    (row,) = list(csv.DictReader(open(out / "particles.csv")))
    assert row["equivalent_diameter_nm"] == "" and abs(float(row["equivalent_diameter_px"]) - 50) < 5


def test_no_inputs_is_a_usage_error(tmp_path):
    assert main(["analyze", "-o", str(tmp_path / "x")]) == 2
    assert main(["analyze", str(tmp_path / "missing-dir-or-file.mrc"), "-o", str(tmp_path / "y"), "--quiet"]) == 1


def _outputs(out):
    """Every file of an analysis whose bytes may not depend on how it ran."""
    names = ["particles.csv"] + [f"masks/{p.name}" for p in sorted((out / "masks").iterdir())]
    return {name: (out / name).read_bytes() for name in names}


def test_workers_and_a_dask_cluster_give_the_serial_bytes(example_run, tmp_path, dask_cluster):
    serial = _outputs(example_run)
    examples = len(json.loads((EXAMPLES_DIR / "examples.json").read_text())["files"])
    assert len(serial) == 1 + 2 * examples  # the table, and a mask and a label image per example
    two = tmp_path / "two"
    assert main(["analyze", "--example", "-o", str(two), "--workers", "2", "--quiet"]) == 0
    assert _outputs(two) == serial
    summary = json.loads((two / "summary.json").read_text())
    assert summary["settings"]["workers"] == 2 and summary["settings"]["threads_per_worker"] >= 1
    assert [i["file"] for i in summary["per_image"]] == sorted(i["file"] for i in summary["per_image"])
    dask = tmp_path / "dask"
    address = dask_cluster.scheduler_address
    assert main(["analyze", "--example", "-o", str(dask), "--scheduler", address, "--quiet"]) == 0
    assert json.loads((dask / "summary.json").read_text())["settings"]["scheduler"] == address
    assert _outputs(dask) == serial


def test_parallel_options_are_checked_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "x")
    for args, option in ((["--workers", "0"], "--workers"), (["--max-memory", "3", "--workers", "4"], "--max-memory"),
                         (["--scheduler", "no-port-here"], "--scheduler")):
        try:
            code = main(["analyze", "--example", "-o", out, "--quiet", *args])
        except SystemExit as usage:  # argparse's own check
            code = usage.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and option in err[0], (args, err)


def test_resume_reuses_finished_files(example_run, tmp_path, monkeypatch):
    import nanofind.segment.batch as batch

    out = tmp_path / "out"
    shutil.copytree(example_run, out)
    first = (out / "particles.csv").read_bytes()
    (out / "particles.csv").unlink()
    analysed = []

    def no_analysis(function, tasks, **kwargs):  # every file handed out is counted, and fails
        analysed.extend(path for _, path in tasks)
        return ((k, batch.FileResult(path, error="analysed again")) for k, (_, path) in enumerate(tasks))

    monkeypatch.setattr(batch, "run_tasks", no_analysis)
    # another worker count runs the same analysis: its records are reused
    assert main(["analyze", "--example", "-o", str(out), "--resume", "--workers", "2", "--quiet"]) == 0
    assert not analysed and (out / "particles.csv").read_bytes() == first
    # other settings: nothing is reused
    assert main(["analyze", "--example", "-o", str(out), "--resume", "--min-area", "2", "--quiet"]) == 1
    assert len(analysed) == len(json.loads((EXAMPLES_DIR / "examples.json").read_text())["files"])
