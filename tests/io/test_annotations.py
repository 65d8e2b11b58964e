"""Burned-in data bars, scale bars and label boxes (nanofind.io.annotations)."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

from nanofind.io import find_annotations, read_micrograph

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FORMATS_DIR = Path(os.environ.get("NANOFIND_FORMATS_DIR") or SHARED / "formats")
REAL_DIR = SHARED / "real-tem-np" / "train"


def micrograph(shape=(256, 320), counts=60.0, seed=0, discs=((80, 90, 20), (170, 220, 28), (60, 250, 14))):
    """An 8-bit bright-field field: blurred dark discs on a grainy film, Poisson noise (a recorded image)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    thickness = np.zeros(shape)
    for cy, cx, r in discs:
        thickness += 2 * np.sqrt(np.clip(r**2 - (yy - cy) ** 2 - (xx - cx) ** 2, 0, None))
    film = ndi.gaussian_filter(rng.normal(0, 1, shape), 3)
    intensity = counts * np.exp(-0.04 * ndi.gaussian_filter(thickness, 1.2)) * (1 + 0.05 * film)
    image = rng.poisson(intensity).astype(np.float64)
    return np.clip(image * 255 / (1.3 * counts), 0, 255).astype(np.uint8)


def draw(image: np.ndarray, paint) -> np.ndarray:
    """``image`` with ``paint(ImageDraw, font)`` drawn on it, as microscope software burns labels in."""
    canvas = Image.fromarray(image)
    paint(ImageDraw.Draw(canvas), ImageFont.load_default())
    return np.asarray(canvas)


def with_data_bar(image: np.ndarray, rows: int = 36, edge: str = "bottom") -> np.ndarray:
    """``image`` with a white data bar of ``rows`` holding black text and a scale bar, below it or left of it."""
    h, w = image.shape
    bar = np.full((rows, w) if edge == "bottom" else (h, rows), 255, np.uint8)
    if edge == "bottom":
        bar = draw(bar, lambda d, f: (d.text((6, 4), "HV 200 kV  Mag 30 kx  2026-11-30", fill=0, font=f),
                                      d.rectangle([w - 110, rows - 10, w - 10, rows - 6], fill=0)))
        return np.vstack([image, bar])
    bar = draw(bar, lambda d, f: d.text((2, h // 2), "50", fill=0, font=f))
    return np.hstack([bar, image])


def test_recorded_images_have_no_annotations():
    # noise means neighbours are rarely equal, at any dose: nothing is drawn, even a few counts per pixel
    for counts in (2.0, 8.0, 60.0, 400.0):
        image = micrograph(counts=counts, seed=int(counts))
        found = find_annotations(image)
        assert not found.found and not found.mask.any() and found.sentence() == ""
    raw = np.random.default_rng(1).poisson(0.4, (200, 300)).astype(np.float32)  # counting camera, sub-count dose
    assert not find_annotations(raw).found


@pytest.mark.parametrize("edge", ["bottom", "left"])
def test_a_data_bar_is_found_to_the_row_and_mirrored_away(edge):
    image = micrograph()
    barred = with_data_bar(image, 36, edge)
    found = find_annotations(barred)
    assert found.bands == {edge: 36}
    expected = np.zeros(barred.shape, bool)
    if edge == "bottom":
        expected[-36:] = True
    else:
        expected[:, :36] = True
    np.testing.assert_array_equal(found.mask, expected)
    cleaned = found.cleaned(barred)
    assert cleaned.dtype == np.float32 and cleaned.shape == barred.shape
    if edge == "bottom":  # the band holds the rows above it, mirrored: the image's own texture, no white
        np.testing.assert_array_equal(cleaned[-36:], image[-36:][::-1])
        np.testing.assert_array_equal(cleaned[:-36], image)
    else:
        np.testing.assert_array_equal(cleaned[:, :36], image[:, :36][:, ::-1])
    assert not find_annotations(cleaned).found
    assert "36-pixel data bar" in found.sentence() and json.dumps(found.to_dict())


def test_a_declared_data_bar_is_taken_as_it_is():
    image = micrograph()
    found = find_annotations(image, data_bar_rows=20)
    assert found.bands == {"bottom": 20} and found.mask[-20:].all() and not found.mask[:-20].any()
    assert not find_annotations(image, data_bar_rows=image.shape[0]).found  # a whole image is no data bar


def test_a_scale_bar_and_its_label_drawn_on_the_image():
    image = micrograph()
    labelled = draw(image, lambda d, f: (d.rectangle([20, 230, 119, 235], fill=255),
                                         d.text((50, 212), "20 nm", fill=255, font=f)))
    found = find_annotations(labelled)
    assert found.bands == {} and found.boxes == [(230, 20, 236, 120)]
    text = (labelled == 255) & (image != 255)
    text[230:236, 20:120] = False
    assert text.any() and found.mask[text].all()  # the label's letters go with the bar
    assert found.mask[:200].sum() == 0 and found.mask[:, 140:].sum() == 0  # and nothing else does
    cleaned = found.cleaned(labelled)  # the film beside it, mirrored: its texture, not a flat patch
    assert not find_annotations(cleaned).found
    assert np.std(cleaned[230:236, 20:120]) > 0.5 * np.std(image[200:230, 20:120])
    np.testing.assert_array_equal(cleaned[found.mask == 0], labelled[found.mask == 0])


def test_a_label_box_is_one_box_with_its_text():
    image = micrograph()
    boxed = draw(image, lambda d, f: (d.rectangle([200, 190, 309, 245], fill=255),
                                      d.rectangle([215, 230, 295, 234], fill=0),
                                      d.text((235, 205), "20 nm", fill=0, font=f)))
    found = find_annotations(boxed)
    (box,) = found.boxes  # the black bar inside it is part of it, not a second box
    assert np.abs(np.subtract(box, (190, 200, 246, 310))).max() <= 1  # a saturated film pixel may touch it
    assert found.mask[190:246, 200:310].all() and found.mask.sum() < 1.2 * 56 * 110


def test_saturated_particles_are_not_drawings():
    # an 8-bit export clipped at black: particle interiors hold exactly 0, but their rims are blurred
    image = micrograph(counts=60.0, discs=((90, 100, 30), (170, 230, 24)))
    clipped = np.clip((image.astype(np.float64) - 70) * 3, 0, 255).astype(np.uint8)
    assert (clipped == 0).sum() > 1000
    assert not find_annotations(clipped).found


def analyzed(tmp_path, images: dict) -> tuple[Path, dict]:
    """``nanofind analyze --model lowmag`` on ``images`` (name -> 8-bit array); (output folder, per-image records)."""
    from nanofind.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    for name, image in images.items():
        Image.fromarray(image).save(folder / name)
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "-o", str(out), "--model", "lowmag", "--quiet"]) == 0
    return out, {Path(i["file"]).name: i for i in json.loads((out / "summary.json").read_text())["per_image"]}


def test_analyze_leaves_a_data_bar_out(tmp_path):
    image = micrograph((320, 320), discs=((80, 90, 22), (200, 220, 26), (306, 60, 24), (150, 260, 18)))
    out, by_name = analyzed(tmp_path, {"plain.png": image, "barred.png": with_data_bar(image, 36)})
    plain, barred = by_name["plain.png"], by_name["barred.png"]
    assert plain["model"].get("annotations") is None
    assert barred["model"]["annotations"]["bands_px"] == {"bottom": 36}
    assert "data bar at the bottom left out" in barred["model"]["reason"]
    assert barred["n_particles"] == plain["n_particles"] >= 3  # no letters taken for particles
    with open(out / "particles.csv") as table:
        rows = [r for r in csv.DictReader(table) if r["file"].endswith("barred.png")]
    assert len(rows) == barred["n_particles"]
    assert max(float(r["centroid_y_px"]) for r in rows) < 320  # none in the bar
    # the particle the bar cuts is flagged as touching the edge, as the image's own edge would
    (cut,) = [r for r in rows if float(r["centroid_y_px"]) > 280 and float(r["centroid_x_px"]) < 100]
    assert cut["touches_edge"] == "True"


def test_the_data_bar_of_a_zeiss_tiff():
    path = FORMATS_DIR / "tiff_Zeiss_SEM_512.tif"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    found = find_annotations(read_micrograph(path).array)
    assert found.bands == {"bottom": 34}  # its white data bar, seen in the file


def test_real_micrographs_have_no_annotations():
    files = sorted(REAL_DIR.glob("img_*.png"))
    if not files:
        pytest.skip(f"no real micrographs in {REAL_DIR}")
    assert [f.name for f in files if find_annotations(read_micrograph(f).array).found] == []


def beam_lit(image: np.ndarray, radius_px: float, floor: float = 0.06) -> np.ndarray:
    """``image`` lit by a round beam of ``radius_px`` centred on it (soft edge); outside, ``floor`` of the light."""
    h, w = image.shape
    yy, xx = np.indices(image.shape)
    r = np.hypot(yy + 0.5 - h / 2, xx + 0.5 - w / 2)
    light = floor + (1 - floor) / (1 + np.exp((r - radius_px) / 2.0))
    return np.clip(image * light, 0, 255).astype(np.uint8)


def test_the_unlit_area_outside_the_beam():
    image = micrograph((256, 320))
    lit = beam_lit(image, 175.0)
    assert not find_annotations(lit).found  # looked for only when asked (in HAADF, vacuum is dark)
    found = find_annotations(lit, beam_edge=True)
    cy, cx, radius = found.beam
    assert abs(cy - 128) < 3 and abs(cx - 160) < 3 and 165 < radius < 178
    yy, xx = np.indices(lit.shape)
    r = np.hypot(yy + 0.5 - 128, xx + 0.5 - 160)
    assert found.mask[r > 182].all() and not found.mask[r < 160].any()
    assert "outside the beam" in found.sentence()
    cleaned = found.cleaned(lit)  # the lit disc mirrored across its edge: no dark corner left for a particle
    assert abs(np.median(cleaned[r > 182]) / np.median(lit[r < 150]) - 1) < 0.1
    np.testing.assert_array_equal(cleaned[~found.mask], lit[~found.mask])
    assert not find_annotations(micrograph((256, 320)), beam_edge=True).found
    # a scale bar inside the beam is found beside it
    barred = beam_lit(draw(image, lambda d, f: d.rectangle([100, 120, 199, 125], fill=255)), 175.0)
    both = find_annotations(barred, beam_edge=True)
    assert both.boxes == [(120, 100, 126, 200)] and both.beam is not None
    assert both.cleaned(barred)[120:126, 100:200].max() < 255


def test_a_dark_particle_cut_by_the_border_is_no_beam_edge():
    # a large, nearly black particle across the corner: dark and on the border, but convex, no circle
    image = micrograph((256, 320), discs=((250, 310, 90), (80, 90, 20)))
    darker = np.clip(image.astype(np.float64) * np.where(np.hypot(*np.indices(image.shape) - np.array(
        [250, 310])[:, None, None]) < 90, 0.15, 1.0), 0, 255).astype(np.uint8)
    assert not find_annotations(darker, beam_edge=True).found


def test_analyze_finds_no_particles_outside_the_beam(tmp_path):
    image = micrograph((320, 320), discs=((110, 120, 22), (200, 210, 26), (160, 90, 18)))
    _, by_name = analyzed(tmp_path, {"plain.png": image, "beam.png": beam_lit(image, 190.0)})
    assert by_name["beam.png"]["model"]["annotations"]["beam_circle_px"] is not None
    assert by_name["beam.png"]["n_particles"] == by_name["plain.png"]["n_particles"] == 3  # no dark corners
