"""Mirror labelling (seed 004, ch. 5): doubled sets, flipped mirrors, known wrong labels, files and CLI."""

import csv
import json

import numpy as np
import pytest
import tifffile

from nanofind.cli import main
from nanofind.datasets.mirror_label import mirror_label, write_mirror_labelled
from nanofind.errors import NanofindInputError


def _shape_l(shift: int = 0) -> np.ndarray:
    """A 40x40 "L": a chiral shape, different from its left-right mirror."""
    image = np.zeros((40, 40), np.float32)
    image[8:32, 10 + shift:14 + shift] = 1.0
    image[28:32, 10 + shift:26 + shift] = 1.0
    return image


def _images(n: int) -> list[np.ndarray]:
    return [_shape_l(k % 5) + 0.01 * k for k in range(n)]


def _write_tiffs(folder, n: int, pixel_size_A: float | None = None) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    tags = {"resolution": (1e8 / pixel_size_A,) * 2, "resolutionunit": "CENTIMETER"} if pixel_size_A else {}
    paths = []
    for k, image in enumerate(_images(n)):
        paths.append(folder / f"p{k:02d}.tif")
        tifffile.imwrite(paths[-1], image, **tags)
    return paths


def _read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_set_doubles_and_mirrors_are_flipped_with_the_other_label():
    images = _images(6)
    items, records = mirror_label(images, dominant="right")
    assert len(items) == len(records) == 12
    assert not np.array_equal(images[0], np.fliplr(images[0]))  # the shape is chiral
    for item, r in zip(items, records, strict=True):
        if r.mirrored:
            assert np.array_equal(item, np.fliplr(images[r.source])) and r.label == "left"
        else:
            assert np.array_equal(item, images[r.source]) and r.label == "right"
        assert not r.wrong and r.true_label == r.label
    assert sorted(r.source for r in records) == sorted(list(range(6)) * 2)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 1.0])
def test_wrong_labels_are_exactly_the_flipped_originals_and_their_mirrors(fraction):
    images = _images(10)
    items, records = mirror_label(images, dominant="left", minority_fraction=fraction, rng=3)
    flipped = {r.source for r in records if not r.mirrored and r.wrong}
    assert len(flipped) == round(fraction * 10)
    assert sum(r.wrong for r in records) == 2 * round(fraction * 10)
    for item, r in zip(items, records, strict=True):
        assert r.wrong == (r.source in flipped) == (r.label != r.true_label)
        assert r.label == ("right" if r.mirrored else "left")
        # a flipped original is the mirror of the input (truly right-handed), its mirror the input itself
        expected = images[r.source] if (r.source in flipped) == r.mirrored else np.fliplr(images[r.source])
        assert np.array_equal(item, expected)


def test_same_seed_same_result_and_other_seed_other_choice():
    images = _images(20)
    a = mirror_label(images, minority_fraction=0.25, rng=7)[1]
    b = mirror_label(images, minority_fraction=0.25, rng=7)[1]
    assert a == b
    picks = {tuple(r.source for r in mirror_label(images, minority_fraction=0.25, rng=s)[1] if r.wrong)
             for s in range(5)}
    assert len(picks) > 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dominant": "up"}, "dominant: must be 'right' or 'left', got 'up'"),
    ({"minority_fraction": 1.5}, "minority_fraction: must be between 0 and 1, got 1.5"),
    ({"minority_fraction": -0.1}, "minority_fraction"),
    ({"minority_fraction": float("nan")}, "minority_fraction"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(NanofindInputError, match=match):
        mirror_label(_images(2), **kwargs)


def test_non_2d_image_is_refused():
    with pytest.raises(NanofindInputError, match="image 1 must be a 2D array"):
        mirror_label([np.zeros((4, 4)), np.zeros((2, 4, 4))])


def test_write_mirror_labelled_files(tmp_path):
    _write_tiffs(tmp_path / "in", 5, pixel_size_A=0.5)
    out = tmp_path / "out"
    r = write_mirror_labelled([tmp_path / "in"], out, dominant="right", minority_fraction=0.4, seed=1)
    assert r["items"] == 10 and r["wrong"] == 4 and r["skipped"] == []
    with open(out / "labels.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["file", "label"]
    labels, truth = _read_csv(out / "labels.csv"), _read_csv(out / "truth.csv")
    assert len(labels) == len(truth) == 10
    assert list(truth[0]) == ["file", "label", "true_label", "wrong", "source", "mirrored"]
    assert [row["file"] for row in labels][:2] == ["images/p00.tif", "images/p00_mirror.tif"]
    assert sum(row["wrong"] == "true" for row in truth) == 4
    for row in truth:
        assert (row["wrong"] == "true") == (row["label"] != row["true_label"])
        original = tifffile.imread(row["source"])
        written = tifffile.imread(out / row["file"])
        assert written.dtype == np.float32
        flipped = (row["mirrored"] == "true") != (row["wrong"] == "true")
        assert np.array_equal(written, np.fliplr(original) if flipped else original)
    from nanofind.io.micrograph import read_micrograph

    assert read_micrograph(out / "images/p03_mirror.tif", min_side_px=8).pixel_size_A == pytest.approx(0.5)
    record = json.loads((out / "mirror_label.json").read_text())
    assert record["dominant"] == "right" and record["minority_fraction"] == 0.4 and record["seed"] == 1
    assert record["labels"] == {"right": 5, "left": 5} and record["flipped_originals"] == 2
    assert "nanofind_version" in record
    again = tmp_path / "again"
    write_mirror_labelled([tmp_path / "in"], again, dominant="right", minority_fraction=0.4, seed=1)
    assert (again / "truth.csv").read_text() == (out / "truth.csv").read_text()


def test_cli_writes_the_set(tmp_path, capsys):
    paths = _write_tiffs(tmp_path / "in", 4)
    out = tmp_path / "out"
    code = main(["dataset", "mirror-label", *map(str, paths), "--dominant", "left", "-o", str(out),
                 "--minority-fraction", "0.5", "--seed", "2", "--quiet"])
    assert code == 0
    assert "8 items from 4 images" in capsys.readouterr().err
    assert len(list((out / "images").glob("*.tif"))) == 8
    truth = _read_csv(out / "truth.csv")
    assert sum(row["wrong"] == "true" for row in truth) == 4
    assert {row["label"] for row in truth if row["mirrored"] == "false"} == {"left"}


def test_cli_skips_an_unreadable_file_with_one_line(tmp_path, capsys):
    paths = _write_tiffs(tmp_path / "in", 2)
    bad = tmp_path / "in" / "broken.tif"
    bad.write_bytes(b"not a tiff")
    code = main(["dataset", "mirror-label", str(tmp_path / "in"), "--dominant", "right", "-o", str(tmp_path / "o"),
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 2 and "broken.tif" in err[0]
    assert len(_read_csv(tmp_path / "o" / "labels.csv")) == 2 * len(paths)


def _exit_code(args: list[str]) -> int:
    """``main``'s status, also when argparse exits."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(("args", "needle"), [
    (["IN", "--dominant", "right", "--minority-fraction", "1.5"], "--minority-fraction must be between 0 and 1"),
    (["IN", "--dominant", "up"], "invalid choice"),
    (["MISSING", "--dominant", "right"], "missing.tif"),
    (["MISSING", "MISSING2", "--dominant", "right"], "none of the 2 input files could be read"),
    (["EMPTY", "--dominant", "right"], "no images found"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, args, needle):
    (tmp_path / "empty").mkdir()
    names = {"IN": str(_write_tiffs(tmp_path / "in", 1)[0]), "MISSING": str(tmp_path / "missing.tif"),
             "MISSING2": str(tmp_path / "missing2.tif"), "EMPTY": str(tmp_path / "empty")}
    code = _exit_code(["dataset", "mirror-label", *(names.get(a, a) for a in args), "-o", str(tmp_path / "out"),
                       "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out" / "labels.csv").exists()


def test_clashing_output_names_are_refused(tmp_path):
    a, b = _write_tiffs(tmp_path / "a", 1)[0], _write_tiffs(tmp_path / "b", 1)[0]
    with pytest.raises(NanofindInputError, match="both give images/p00"):
        write_mirror_labelled([a, b], tmp_path / "out", dominant="right")
