"""``nanofind columns`` end to end on small synthetic micrographs with known columns."""

import csv
import json

import numpy as np
import pytest
import tifffile
from scipy.spatial import cKDTree

from nanofind.cli import main
from nanofind.columns.synthetic import haadf_lattice

PIXEL_A = 0.3  # 0.03 nm


def write_tif(path, array, pixel_A=PIXEL_A):
    if pixel_A is None:
        tifffile.imwrite(path, array)
    else:
        tifffile.imwrite(path, array, imagej=True, resolution=(1 / (pixel_A / 10), 1 / (pixel_A / 10)),
                         metadata={"unit": "nm"})
    return path


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def lattice():
    return haadf_lattice((160, 160), spacing_px=12.0, sigma_px=2.0, counts=800, rng=5)


def test_columns_of_one_image_are_in_angstrom_from_the_top_left_corner(lattice, tmp_path, capsys):
    image, truth_px = lattice
    source = write_tif(tmp_path / "haadf.tif", image)
    assert main(["columns", str(source), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    rows = read_rows(tmp_path / "out" / "haadf_columns.csv")
    assert list(rows[0]) == ["x_A", "y_A", "x_px", "y_px", "intensity", "peak", "height", "element", "confidence",
                             "edge", "surface"]
    xy_A = np.array([[float(r["x_A"]), float(r["y_A"])] for r in rows])
    xy_px = np.array([[float(r["x_px"]), float(r["y_px"])] for r in rows])
    assert np.allclose(xy_A, xy_px * PIXEL_A, atol=1e-3)
    distance, _ = cKDTree(xy_A).query(truth_px * PIXEL_A)
    assert (distance < 0.5).mean() >= 0.99  # Å
    assert all(r["height"] == "" for r in rows)  # peaks alone know no heights
    record = json.loads((tmp_path / "out" / "haadf_columns.json").read_text())
    assert record["pixel_size_A"] == pytest.approx(PIXEL_A) and record["contrast"] == "bright"
    assert record["spacing_A"] == pytest.approx(12 * PIXEL_A, rel=0.08)
    for name in ("haadf_columns.png", "haadf_columns_summary.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000
    # a second run finds the record and does not redo the file
    assert main(["columns", str(source), "-o", str(tmp_path / "out")]) == 0
    assert "done before" in capsys.readouterr().err


def test_a_stack_gets_frames_tracks_and_drift(lattice, tmp_path):
    image, _ = lattice
    shift_px = np.array([1, 2])  # rows, columns per frame
    stack = np.stack([np.roll(image, tuple(k * shift_px), axis=(0, 1)) for k in range(3)])
    source = write_tif(tmp_path / "series.tif", stack)
    assert main(["columns", str(source), "-o", str(tmp_path), "--quiet"]) == 0
    rows = read_rows(tmp_path / "series_columns.csv")
    assert list(rows[0])[:2] == ["frame", "track_id"]
    record = json.loads((tmp_path / "series_columns.json").read_text())
    assert record["frames"] == 3
    assert record["surface_tracks_plotted"] > 0 and (tmp_path / "series_surface_tracks.png").stat().st_size > 1000
    assert record["drift_A"][2] == pytest.approx([2 * 2 * PIXEL_A, 2 * 1 * PIXEL_A], abs=0.05)
    by_track = {}
    for r in rows:
        by_track.setdefault(r["track_id"], []).append(r)
    whole = [t for t in by_track.values() if len(t) == 3 and all(r["edge"] == "0" for r in t)]
    assert len(whole) >= 0.8 * record["columns_per_frame"][0]
    for track in whole:  # each step of a track is the frame's shift (columns rolled, not moved)
        x = [float(r["x_A"]) for r in track]
        assert np.allclose(np.diff(x), 2 * PIXEL_A, atol=0.1)


def test_bad_inputs_give_one_line_and_exit_2_or_1_for_a_batch(lattice, tmp_path, capsys):
    image, _ = lattice
    no_pixel = write_tif(tmp_path / "nopixel.tif", image, pixel_A=None)
    assert main(["columns", str(no_pixel), "-o", str(tmp_path / "a"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nopixel.tif" in err[0] and "--pixel-size" in err[0]
    assert main(["columns", str(no_pixel), "-o", str(tmp_path / "a"), "--quiet", "--pixel-size", "0.3"]) == 0
    capsys.readouterr()
    blank = write_tif(tmp_path / "blank.tif", np.random.default_rng(0).normal(50, 2, (96, 96)).astype(np.float32))
    assert main(["columns", str(blank), "-o", str(tmp_path / "b"), "--quiet", "--spacing", "3.6"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "blank.tif" in err[0] and "no atomic columns" in err[0]
    good = write_tif(tmp_path / "good.tif", image)
    assert main(["columns", str(blank), str(good), "-o", str(tmp_path / "c"), "--quiet", "--spacing", "3.6"]) == 1
    assert (tmp_path / "c" / "good_columns.csv").is_file()
    with pytest.raises(SystemExit) as exit_:
        main(["columns", str(good), "-o", str(tmp_path / "d"), "--spacing", "-1"])
    assert exit_.value.code == 2 and "--spacing must be > 0" in capsys.readouterr().err


def test_the_bundled_ceo2_example_gives_its_columns_and_not_the_carbon(tmp_path):
    from nanofind.columns import EXAMPLES_DIR

    source = EXAMPLES_DIR / "ceo2_110.tif"
    assert main(["columns", str(source), "-o", str(tmp_path), "--quiet"]) == 0
    for name in ("ceo2_110_columns.csv", "ceo2_110_columns.png", "ceo2_110_columns_summary.png"):
        assert (tmp_path / name).stat().st_size > 1000
    found = np.array([[float(r["x_A"]), float(r["y_A"])] for r in read_rows(tmp_path / "ceo2_110_columns.csv")])
    truth = np.loadtxt(EXAMPLES_DIR / "ceo2_110_truth.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2))
    to_truth, _ = cKDTree(truth[:, :2]).query(found)
    assert (to_truth < 0.5).mean() > 0.85  # found columns are real ones, not carbon speckle
    thick = truth[:, 2] >= 8
    to_found, _ = cKDTree(found).query(truth[thick, :2])
    assert (to_found < 0.5).mean() > 0.6  # HRTEM peaks also find some O columns; heights need the network
    everywhere = main(["columns", str(source), "-o", str(tmp_path / "all"), "--quiet", "--region", "all"])
    assert everywhere == 0
    loose = np.array([[float(r["x_A"]), float(r["y_A"])] for r in read_rows(tmp_path / "all" / "ceo2_110_columns.csv")])
    assert len(loose) > len(found)  # without the lattice region the film's speckle counts too


def _truth_table():
    from nanofind.columns import EXAMPLES_DIR

    with open(EXAMPLES_DIR / "ceo2_110_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([[float(r["x_A"]), float(r["y_A"])] for r in rows]), np.array([int(r["height"]) for r in rows]),
            np.array([r["element"] for r in rows]))


def test_the_network_gives_heights_elements_and_a_height_map_of_the_bundled_example(tmp_path):
    from nanofind.columns import EXAMPLES_DIR

    source = EXAMPLES_DIR / "ceo2_110.tif"
    assert main(["columns", str(source), "-o", str(tmp_path), "--quiet", "--method", "network"]) == 0
    for name in ("ceo2_110_columns.csv", "ceo2_110_columns.png", "ceo2_110_columns_summary.png",
                 "ceo2_110_heights.tif"):
        assert (tmp_path / name).stat().st_size > 1000
    rows = read_rows(tmp_path / "ceo2_110_columns.csv")
    heights = np.array([int(r["height"]) for r in rows])
    confidence = np.array([float(r["confidence"]) for r in rows])
    assert heights.min() >= 1 and heights.max() <= 16 and ((confidence > 0) & (confidence <= 1)).all()
    assert {r["element"] for r in rows} <= {"Ce", "O"}
    height_map = tifffile.imread(tmp_path / "ceo2_110_heights.tif")
    assert height_map.shape == tifffile.imread(source).shape and height_map.dtype == np.uint8
    with tifffile.TiffFile(tmp_path / "ceo2_110_heights.tif") as tif:  # the pixel size travels with the map
        per_nm = tif.pages[0].tags["XResolution"].value
    record = json.loads((tmp_path / "ceo2_110_columns.json").read_text())
    assert per_nm[1] / per_nm[0] * 10 == pytest.approx(record["pixel_size_A"], rel=1e-4)
    # against the scene's own columns: found columns are real, and the Ce columns are found
    truth_xy, truth_height, truth_element = _truth_table()
    found = np.array([[float(r["x_A"]), float(r["y_A"])] for r in rows])
    to_truth, nearest = cKDTree(truth_xy).query(found)
    assert (to_truth < 0.6).mean() > 0.8
    ce = truth_element == "Ce"
    to_found, _ = cKDTree(found).query(truth_xy[ce])
    assert (to_found < 0.6).mean() > 0.9
    matched = to_truth < 0.6
    elements = np.array([r["element"] for r in rows])
    assert np.mean(elements[matched] == truth_element[nearest[matched]]) > 0.95  # Ce and O told apart
    on_ce = matched & (truth_element[nearest] == "Ce")
    assert np.mean(np.abs(heights[on_ce] - truth_height[nearest[on_ce]]) <= 1) > 0.8  # Ce heights within one atom


def test_the_network_tracks_heights_through_a_shifted_series(tmp_path):
    from nanofind.columns import EXAMPLES_DIR

    image = tifffile.imread(EXAMPLES_DIR / "ceo2_110.tif")[40:200, 40:200]
    with tifffile.TiffFile(EXAMPLES_DIR / "ceo2_110.tif") as tif:
        x_res = tif.pages[0].tags["XResolution"].value
    pixel_A = 10 * x_res[1] / x_res[0]
    stack = np.stack([np.roll(image, (0, 2 * k), axis=(0, 1)) for k in range(3)])
    source = write_tif(tmp_path / "series.tif", stack, pixel_A=pixel_A)
    assert main(["columns", str(source), "-o", str(tmp_path), "--quiet", "--method", "network"]) == 0
    rows = read_rows(tmp_path / "series_columns.csv")
    assert {r["frame"] for r in rows} == {"0", "1", "2"}
    assert tifffile.imread(tmp_path / "series_heights.tif").shape == (3, 160, 160)
    assert (tmp_path / "series_surface_tracks.png").stat().st_size > 1000
    by_track = {}
    for r in rows:
        by_track.setdefault(r["track_id"], []).append(r)
    whole = [t for t in by_track.values() if len(t) == 3 and all(r["edge"] == "0" for r in t)]
    assert len(whole) >= 0.6 * sum(r["frame"] == "0" for r in rows)
    steps = np.array([np.diff([float(r["x_A"]) for r in t]) for t in whole])
    assert np.median(np.abs(steps - 2 * pixel_A)) < 0.1  # each frame moves the columns by 2 px in x
    spread = np.array([np.ptp([int(r["height"]) for r in t]) for t in whole])
    assert np.mean(spread <= 1) > 0.9  # the same columns seen again keep their heights to within one atom


def test_a_model_of_another_task_or_an_image_without_columns_is_refused_in_one_line(lattice, tmp_path, capsys):
    from nanofind.learn.model_file import DEFAULT_MODEL_DIR

    good = write_tif(tmp_path / "good.tif", lattice[0])
    code = main(["columns", str(good), "-o", str(tmp_path / "o"), "--quiet", "--method", "network",
                 "--model", str(DEFAULT_MODEL_DIR)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not for 'column_heights'" in err[0]
    # noise holds no columns, though a network would answer on it anyway
    noise = write_tif(tmp_path / "noise.tif", np.random.default_rng(0).normal(100, 3, (256, 256)).astype(np.float32),
                      pixel_A=0.15)
    code = main(["columns", str(noise), "-o", str(tmp_path / "n"), "--quiet", "--method", "network"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "noise.tif" in err[0] and "no lattice" in err[0]


def test_the_thickness_profile_measures_depth_from_the_particles_outline():
    from nanofind.columns.command import _surface_distance

    grid = np.stack(np.meshgrid(np.arange(-24, 25, 1.0), np.arange(-24, 25, 1.0)), -1).reshape(-1, 2)
    disc = grid[np.hypot(*grid.T) <= 20] + 30.0  # a disc of columns 1 Å apart, radius 20 Å, centre (30, 30) Å
    depth = _surface_distance(disc, 1.0, 0.25, (240, 240))
    expected = 20 - np.hypot(*(disc - 30.0).T)
    assert np.abs(depth - expected).max() < 1.5  # the outline runs through the (jagged) outer columns
    assert depth.max() == pytest.approx(20, abs=1.5)  # the centre (a 1 Å grid is a jagged circle)
    two = np.concatenate([disc - 15, disc[np.hypot(*(disc - 30).T) <= 8] + 22])  # and a separate small one
    depth = _surface_distance(two, 1.0, 0.25, (300, 300))
    assert depth[len(disc):].max() == pytest.approx(8, abs=1.5)


def test_burned_in_bars_give_no_columns_and_hide_none(lattice, tmp_path):
    image, truth_px = lattice
    image = image.astype(np.float32)
    top = float(image.max()) * 1.5
    bar = np.full((24, image.shape[1]), top, np.float32)  # a data bar below the image, with "text" in it
    bar[6:14, 10:100:4] = 0.0
    labelled = np.vstack([image, bar])
    labelled[140:145, 20:70] = top  # and a scale bar drawn on the image
    source = write_tif(tmp_path / "labelled.tif", labelled)
    assert main(["columns", str(source), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "labelled_columns.json").read_text())
    (left_out,) = record["annotations_left_out"]
    assert left_out["bands_px"] == {"bottom": 24} and left_out["boxes_px"] == [[140, 20, 145, 70]]
    xy_px = np.array([[float(r["x_px"]), float(r["y_px"])] for r in read_rows(tmp_path / "out" /
                                                                                 "labelled_columns.csv")])
    assert xy_px[:, 1].max() < 160  # nothing in the data bar
    in_scale_bar = (xy_px[:, 0] >= 20) & (xy_px[:, 0] < 70) & (xy_px[:, 1] >= 140) & (xy_px[:, 1] < 145)
    assert not in_scale_bar.any()
    # every true column away from the scale bar is still found
    clear = ~((truth_px[:, 0] > 14) & (truth_px[:, 0] < 76) & (truth_px[:, 1] > 134) & (truth_px[:, 1] < 151))
    distance, _ = cKDTree(xy_px).query(truth_px[clear])
    assert (distance < 1.5).mean() >= 0.98
