"""``nanofind classify crops``: labelled crops of a simulated dataset, optionally of chosen classes only."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from nanofind.classify.classes import CLASS_NAMES
from nanofind.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "examples/recipes/classify-train-agglomerates.yaml"


def _classes_on_disk(folder: Path) -> Counter:
    return Counter({name: len(list((folder / name).glob("*.tif"))) for name in CLASS_NAMES})


@pytest.fixture(scope="module")
def touching_dataset(tmp_path_factory) -> Path:
    # one scene of touching particles (seed 7 holds a cluster), seen twice; fast phase-object mode
    path = tmp_path_factory.mktemp("crops") / "touching.h5"
    assert main(["simulate", str(RECIPE), "-n", "2", "--seed", "7", "-o", str(path), "--quiet"]) == 0
    return path


def test_crops_of_chosen_classes_are_the_same_crops_as_in_a_full_cut(touching_dataset, tmp_path):
    assert main(["classify", "crops", str(touching_dataset), "-o", str(tmp_path / "all"), "--quiet"]) == 0
    assert main(["classify", "crops", str(touching_dataset), "-o", str(tmp_path / "some"), "--quiet",
                 "--classes", "agglomerate", "fault"]) == 0
    everything, some = _classes_on_disk(tmp_path / "all"), _classes_on_disk(tmp_path / "some")
    assert everything["agglomerate"] > 0 and sum(everything.values()) > everything["agglomerate"] + everything["fault"]
    assert some == Counter({"agglomerate": everything["agglomerate"], "fault": everything["fault"]})
    rows = list(csv.DictReader(open(tmp_path / "some" / "crops.csv", encoding="utf-8")))
    assert {r["class"] for r in rows} <= {"agglomerate", "fault"} and len(rows) == sum(some.values())
    # the same files, cut from the same places
    assert sorted(p.name for p in (tmp_path / "some" / "agglomerate").glob("*.tif")) == sorted(
        p.name for p in (tmp_path / "all" / "agglomerate").glob("*.tif"))


def test_unknown_class_is_refused(touching_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["classify", "crops", str(touching_dataset), "-o", str(tmp_path / "x"), "--classes", "twinned"])
    assert stop.value.code == 2
    assert "twinned" in capsys.readouterr().err
