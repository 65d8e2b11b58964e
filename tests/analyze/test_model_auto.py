"""``nanofind analyze --model auto`` on a folder mixing HRTEM and bright-field micrographs, pixel sizes known or not."""

import csv
import json
import shutil

import mrcfile
import numpy as np
import pytest
from PIL import Image

from nanofind.analyze.pipeline import EXAMPLES_DIR
from nanofind.cli import main


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """HRTEM and bright-field examples, each kind once with its pixel size in the file and once without."""
    folder = tmp_path_factory.mktemp("mixed")
    shutil.copy(EXAMPLES_DIR / "example_01.mrc", folder)  # HRTEM, 0.6 Å in the header
    shutil.copy(EXAMPLES_DIR / "example_04.mrc", folder)  # bright field, 2.48 Å in the header
    shutil.copy(EXAMPLES_DIR / "example_05.png", folder)  # bright field, no pixel size
    hrtem = mrcfile.read(EXAMPLES_DIR / "example_02.mrc").astype(np.float32)  # HRTEM, saved without its pixel size
    lo, hi = np.percentile(hrtem, (0.1, 99.9))
    Image.fromarray(np.clip((hrtem - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)).save(folder / "hrtem.png")
    out = folder / "out"
    assert main(["analyze", str(folder), "-o", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    return out, summary, {i["file"].rsplit("/", 1)[-1]: i for i in summary["per_image"]}


def test_each_image_gets_the_model_of_its_kind(mixed_run):
    _, summary, images = mixed_run
    chosen = {name: image["model"]["model"] for name, image in images.items()}
    assert chosen == {"example_01.mrc": "hrtem", "hrtem.png": "hrtem", "example_04.mrc": "lowmag",
                      "example_05.png": "lowmag"}
    assert {name: m["images"] for name, m in summary["models"].items()} == {"hrtem": 2, "lowmag": 2}
    # the reasons say what decided: the pixel size where known, else what the pixels showed
    assert "pixel size 0.6" in images["example_01.mrc"]["model"]["reason"]
    assert "pixel size 2.48" in images["example_04.mrc"]["model"]["reason"]
    for name in ("hrtem.png", "example_05.png"):
        assert "pixel size unknown" in images[name]["model"]["reason"]
        assert images[name]["model"]["probability_hrtem"] is not None


def test_sizes_are_in_nm_where_the_scale_is_known_and_close_to_the_truth(mixed_run):
    out, _, images = mixed_run
    rows = list(csv.DictReader(open(out / "particles.csv")))
    by_file = {}
    for row in rows:
        by_file.setdefault(row["file"].rsplit("/", 1)[-1], []).append(row)
    assert set(by_file) == set(images)
    for name in ("example_01.mrc", "example_04.mrc"):
        assert all(r["equivalent_diameter_nm"] != "" for r in by_file[name])
    for name in ("hrtem.png", "example_05.png"):
        assert all(r["equivalent_diameter_nm"] == "" for r in by_file[name])
    truth = json.loads((EXAMPLES_DIR / "examples.json").read_text())["files"]["example_04.mrc"]
    inside = [float(r["equivalent_diameter_nm"]) for r in by_file["example_04.mrc"] if r["touches_edge"] in
              ("False", "false", "0")]
    assert np.median(inside) == pytest.approx(truth["median_equivalent_diameter_nm_inside"], rel=0.2)
    assert len(inside) == pytest.approx(truth["particles_inside"], rel=0.3)


def test_the_report_names_the_model_of_every_image(mixed_run):
    out, _, _ = mixed_run
    html = (out / "report.html").read_text()
    assert "Model <b>hrtem</b> (2 images)" in html and "Model <b>lowmag</b> (2 images)" in html
    assert html.count("model lowmag: ") == 2 and html.count("model hrtem: ") == 2


def test_only_small_bright_field_particles_get_their_outlines_refined(mixed_run):
    out, summary, images = mixed_run
    # both bright-field examples have particles under the card's 40 px (Au spheres of ~32 px, Cu plates of ~28 px)
    refined = {name: image["outlines_refined"] for name, image in images.items()}
    assert refined == {"example_01.mrc": False, "hrtem.png": False, "example_04.mrc": True, "example_05.png": True}
    assert summary["models"]["lowmag"]["refine_outlines_below_px"] == 40
    # both have particles of 15 px or more, so agreeing Otsu particles lend their outlines
    assert images["example_04.mrc"]["threshold_outlines"] > 0 and images["example_01.mrc"]["threshold_outlines"] == 0
    # the px clean-up follows the measured particle size where the pixel size is unknown (bright field)
    assert images["example_05.png"]["cleaning_for_diameter_px"] == pytest.approx(28, rel=0.3)
    assert images["example_04.mrc"]["cleaning_for_diameter_px"] is None  # pixel size known: nm settings
    assert (out / "report.html").read_text().count("small particles: outlines moved") == 2
