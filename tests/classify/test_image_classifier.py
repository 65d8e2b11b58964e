"""Image classifiers of any classes trained from a labels table (issue 15): files, CLI and bad input."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from nanofind.classify.image_classifier import (
    ANY_ANGLE_MAX_ANISOTROPY,
    choose_mirror_odd,
    choose_rotation,
    group_names,
    load_image_classifier,
    mirror_pair_share,
    orientation_anisotropy,
    prepare_image,
    read_labels,
    save_image_classifier,
    train_image_classifier,
)
from nanofind.errors import NanofindInputError
from nanofind.learn.noisy_labels import NoisyTrainingSettings


def _disc_or_ring(kind: str, rng, side: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    radius = rng.uniform(8, 13)
    cy, cx = rng.uniform(radius, side - radius, 2)
    r = np.hypot(yy - cy, xx - cx)
    body = (r < radius) & ((r > radius - 4) if kind == "ring" else True)
    return (100 + rng.normal(0, 5, (side, side)) + 30 * body).astype(np.float32)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A folder of 60 discs and rings with labels.csv (10 % wrong), a clean.csv and the truth."""
    root = tmp_path_factory.mktemp("shapes")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    rows, truth = [], {}
    for k in range(60):
        kind = ("disc", "ring")[k % 2]
        name = f"images/s{k:02d}.tif"
        tifffile.imwrite(root / name, _disc_or_ring(kind, rng))
        label = kind if k % 10 else ("ring" if kind == "disc" else "disc")  # every tenth label wrong
        rows.append((name, label))
        truth[name] = kind
    for name, table in (("labels.csv", rows), ("clean.csv", [(f, truth[f]) for f, _ in rows[1:9]])):
        with open(root / name, "w", newline="") as fh:
            csv.writer(fh).writerows([("file", "label"), *table])
    return root, truth


def test_prepare_image_pads_resamples_and_standardises():
    image = np.zeros((30, 60), np.float32)
    image[:, 30:] = 1.0
    x = prepare_image(image, 32)
    assert x.shape == (32, 32) and x.dtype == np.float32
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-4
    assert x[16, 4] < 0 < x[16, 28]  # left half dark, right half bright: no mirror, no transpose


def test_read_labels_resolves_files_and_names_bad_rows(labelled, tmp_path):
    root, _ = labelled
    table = read_labels(root / "labels.csv")
    assert len(table.files) == 60 and table.classes == ["disc", "ring"]
    assert all(f.is_file() for f in table.files)
    assert group_names([root / "a.tif", root / "a_mirror.tif"])[0] == group_names([root / "a_mirror.tif"])[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nimages/nope.tif,disc\n")
    with pytest.raises(NanofindInputError, match=r"bad.csv line 2: unknown image 'images/nope.tif'"):
        read_labels(bad)
    bad.write_text("name,label\nx,disc\n")
    with pytest.raises(NanofindInputError, match="needs columns file,label; missing file"):
        read_labels(bad)
    with pytest.raises(NanofindInputError, match="no such labels file"):
        read_labels(tmp_path / "absent.csv")


def test_trained_classifier_round_trips_through_its_files(labelled, tmp_path):
    root, _ = labelled
    table = read_labels(root / "labels.csv")
    images = [tifffile.imread(f) for f in table.files]
    settings = NoisyTrainingSettings(method="coteaching", epochs=3, ramp_epochs=1, noise_rate=0.1, batch_size=16)
    classifier = train_image_classifier(images, table.labels, settings=settings, input_px=32)
    assert classifier.card["classes"] == ["disc", "ring"] and classifier.card["networks"] == 2
    assert classifier.card["noise_rate"] == 0.1 and classifier.card["noise_rate_source"] == "given"
    loaded = load_image_classifier(save_image_classifier(classifier, tmp_path / "model"))
    p = classifier.predict_proba(images[:5])
    assert p.shape == (5, 2) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(loaded.predict_proba(images[:5]), p, atol=1e-6)
    with pytest.raises(NanofindInputError, match="at least two classes"):
        train_image_classifier(images[:3], ["disc"] * 3, settings=settings)


def test_mirror_pairs_are_found_bit_for_bit_and_choose_the_mirror_odd_network(tmp_path):
    rng = np.random.default_rng(3)
    originals = [rng.normal(size=(20, 30)).astype(np.float32) for _ in range(10)]
    paired = originals + [o[:, ::-1] for o in originals]
    labels = ["right"] * 10 + ["left"] * 10
    assert mirror_pair_share(paired, labels) == 1.0
    assert choose_mirror_odd("auto", paired, labels) and not choose_mirror_odd("no", paired, labels)
    same_label = ["right"] * 20  # mirrors with the same label are not a handedness set
    assert mirror_pair_share(paired, same_label) == 0.0 and not choose_mirror_odd("auto", paired, same_label)
    unrelated = [rng.normal(size=(20, 30)).astype(np.float32) for _ in range(20)]
    assert mirror_pair_share(unrelated, labels) == 0.0 and not choose_mirror_odd("auto", unrelated, labels)
    symmetric = [np.ones((8, 8), np.float32)] * 2  # its own mirror, but one label each: only across labels
    assert mirror_pair_share(symmetric, ["a", "b"]) == 1.0
    with pytest.raises(NanofindInputError, match="--mirror-odd"):
        choose_mirror_odd("maybe", paired, labels)

    settings = NoisyTrainingSettings(method="standard", epochs=1, batch_size=8, mirror_odd=True)
    classifier = train_image_classifier(paired, labels, settings=settings, input_px=32)
    loaded = load_image_classifier(save_image_classifier(classifier, tmp_path / "model"))
    assert loaded.card["mirror_odd"] is True and "mirror-odd" in loaded.card["architecture"]
    p = loaded.predict_proba(originals[:4])
    assert np.allclose(p, classifier.predict_proba(originals[:4]), atol=1e-6)
    assert np.allclose(loaded.predict_proba([o[:, ::-1] for o in originals[:4]]), p[:, ::-1], atol=1e-5)


def _bar(angle_deg: float, rng, side: int = 48) -> np.ndarray:
    """A 24 × 6 px bright bar through the centre, its long axis at ``angle_deg`` from the x axis, in noise."""
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    t = np.radians(angle_deg)
    along, across = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    return (rng.normal(0, 0.2, (side, side)) + ((np.abs(along) < 12) & (np.abs(across) < 3))).astype(np.float32)


def test_orientation_anisotropy_tells_objects_at_any_angle_from_upright_or_axis_aligned_ones():
    rng = np.random.default_rng(4)
    any_angle = [_bar(a, rng) for a in rng.uniform(0, 360, 80)]
    upright = [_bar(90 + a, rng) for a in rng.uniform(-5, 5, 80)]  # one preferred axis: 2nd harmonic
    quarter = [_bar(a, rng) for a in 90 * rng.integers(0, 4, 80)]  # two axes: 4th harmonic
    low, high_2, high_4 = (orientation_anisotropy(s) for s in (any_angle, upright, quarter))
    assert low < ANY_ANGLE_MAX_ANISOTROPY / 2, low
    assert high_2 > 2 * ANY_ANGLE_MAX_ANISOTROPY and high_4 > 2 * ANY_ANGLE_MAX_ANISOTROPY, (high_2, high_4)
    assert choose_rotation("auto", any_angle) == "any"
    assert choose_rotation("auto", upright) == choose_rotation("auto", quarter) == "quarter"
    assert choose_rotation("quarter", any_angle) == "quarter" and choose_rotation("any", upright) == "any"
    with pytest.raises(NanofindInputError, match="--rotation"):
        choose_rotation("sometimes", upright)


def _nanofind(*args):
    return subprocess.run([sys.executable, "-m", "nanofind", *map(str, args)], capture_output=True, text=True)


def test_cli_trains_from_labels_and_classifies_with_the_model(labelled, tmp_path):
    root, truth = labelled
    model = tmp_path / "model"
    out = _nanofind("classify", "train", root, "--labels", root / "labels.csv", "--method", "two-step",
                    "--clean", root / "clean.csv", "--epochs", "2", "-o", model, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "two-step" in out.stdout
    assert "turns by any angle" in out.stdout  # discs and rings at random places: no preferred direction
    import json

    card = json.loads((model / "card.json").read_text())
    assert card["training"]["settings"]["rotation"] == "any" and card["training"]["rotation_choice"] == "auto"
    assert card["training"]["orientation_anisotropy"] < ANY_ANGLE_MAX_ANISOTROPY
    result = _nanofind("classify", root / "images", "--model", model, "-o", tmp_path / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out" / "classes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["file", "class", "probability", "p_disc", "p_ring"]
    assert len(rows) == 60 and {r["class"] for r in rows} <= {"disc", "ring"}


def test_cli_trains_a_mirror_odd_network_on_a_mirror_labelled_set(labelled, tmp_path):
    root, _ = labelled
    made = _nanofind("dataset", "mirror-label", root / "images", "--dominant", "right", "-o", tmp_path / "set",
                     "--minority-fraction", "0.2", "--quiet")
    assert made.returncode == 0, made.stderr
    out = _nanofind("classify", "train", tmp_path / "set", "--labels", tmp_path / "set" / "labels.csv",
                    "--method", "standard", "--epochs", "1", "-o", tmp_path / "model", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "mirror-odd network" in out.stdout
    plain = _nanofind("classify", "train", tmp_path / "set", "--labels", tmp_path / "set" / "labels.csv",
                      "--method", "standard", "--epochs", "1", "--mirror-odd", "no", "-o", tmp_path / "plain",
                      "--quiet")
    assert plain.returncode == 0, plain.stderr
    assert "mirror-odd" not in plain.stdout


@pytest.mark.parametrize("case", ["missing table", "unknown image", "one class", "two-step without clean",
                                  "tree method with labels"])
def test_bad_label_files_give_one_line_and_exit_2(labelled, tmp_path, case):
    root, _ = labelled
    table = tmp_path / "labels.csv"
    extra = []
    if case == "missing table":
        table = tmp_path / "absent.csv"
    elif case == "unknown image":
        table.write_text("file,label\nimages/s00.tif,disc\nimages/ghost.tif,ring\n")
    elif case == "one class":
        table.write_text("file,label\nimages/s00.tif,disc\nimages/s01.tif,disc\n")
    else:
        table = root / "labels.csv"
        extra = ["--method", "two-step"] if case == "two-step without clean" else ["--method", "gbt"]
    out = _nanofind("classify", "train", root, "--labels", table, *extra, "-o", tmp_path / "m", "--quiet")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "m" / "card.json").exists()
