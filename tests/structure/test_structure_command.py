"""``nanofind structure`` end to end: the example scenes, output files, bad input and resuming."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from ase.io import read, write

from nanofind.cli import main
from nanofind.scene.build import build_scene
from nanofind.scene.io import write_extxyz
from nanofind.scene.recipe import load_recipe
from tests.conftest import REPO


@pytest.fixture(scope="module")
def example_scenes(tmp_path_factory):
    recipes_dir = REPO / "examples" / "recipes"
    folder = tmp_path_factory.mktemp("scenes")
    paths = []
    for name in ("twinned_au", "decahedron_au", "icosahedron_au"):
        atoms, _ = build_scene(load_recipe(recipes_dir / f"{name}.yaml"), 0)
        write_extxyz(folder / f"{name}.extxyz", atoms)
        paths.append(folder / f"{name}.extxyz")
    return paths


def test_example_scenes_give_the_right_grains_and_twin_planes(example_scenes, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["structure", *map(str, example_scenes), "-o", str(out), "--json"]) == 0
    summaries = {s["model"]["path"].split("/")[-1]: s for s in json.loads(capsys.readouterr().out)}
    expected = {"twinned_au.extxyz": (2, 1, 0, "twinned"), "decahedron_au.extxyz": (5, 5, 1, "decahedron"),
                "icosahedron_au.extxyz": (20, 30, 6, "icosahedron")}
    for name, (grains, twins, axes, kind) in expected.items():
        s = summaries[name]
        assert (s["grains"], s["twin_planes"], s["fivefold_axes"]) == (grains, twins, axes), name
        assert [p["type"] for p in s["per_particle"]] == [kind]
    # the decahedron's axis is along the beam, and its five twin planes are edge-on
    deca = summaries["decahedron_au.extxyz"]["per_particle"][0]
    assert deca["fivefold_axis_along_beam"] and deca["visible_planar_defects"] == ["twin"] * 5

    stem = out / "twinned_au"
    for suffix in (".structure.extxyz", ".atoms.csv", ".structure.png", ".summary.json"):
        assert (out / f"twinned_au{suffix}").stat().st_size > 0
    atoms = read(f"{stem}.structure.extxyz")
    names = atoms.arrays["structure"]
    particle = atoms.arrays["is_particle"].astype(bool)
    assert set(names[~particle]) == {"other"}
    assert {"fcc", "hcp", "surface"} <= set(names[particle])
    assert np.all(np.isnan(atoms.arrays["order_fcc"][~particle]))
    with open(f"{stem}.atoms.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(atoms)
    assert rows[0].keys() >= {"x_A", "coordination", "order_fcc", "order_hcp", "structure", "grain", "planar_defect"}
    hcp_rows = [r for r in rows if r["structure"] == "hcp"]
    assert hcp_rows and all(r["planar_defect"] == "0" for r in hcp_rows)


def test_other_formats_and_resuming(tmp_path, capsys):
    from ase.cluster import Octahedron

    model = tmp_path / "octahedron.cif"
    write(model, Octahedron("Pt", 9, cutoff=3))  # an fcc cluster in a format ASE reads
    assert main(["structure", str(model), "-o", str(tmp_path / "out"), "--json"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["per_particle"][0]["type"] == "single crystal"
    assert summary["classes"]["fcc"]["atoms"] > 100
    done = (tmp_path / "out" / "octahedron.summary.json").stat().st_mtime_ns
    assert main(["structure", str(model), "-o", str(tmp_path / "out")]) == 0
    assert "already analysed" in capsys.readouterr().err
    assert (tmp_path / "out" / "octahedron.summary.json").stat().st_mtime_ns == done


def test_bad_input_gives_one_line(tmp_path):
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("not a model\n")
    out = subprocess.run([sys.executable, "-m", "nanofind", "structure", str(garbage), "-o", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "garbage.xyz" in out.stderr and "Traceback" not in out.stderr
    missing = subprocess.run([sys.executable, "-m", "nanofind", "structure", str(tmp_path / "none.cif"),
                              "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert missing.returncode == 2 and "none.cif: no such file" in missing.stderr


def test_batch_with_a_failure_finishes_the_rest(example_scenes, tmp_path):
    garbage = tmp_path / "broken.cif"
    garbage.write_text("data_x\n_cell_length_a oops\n")
    code = main(["structure", str(garbage), str(example_scenes[0]), "-o", str(tmp_path / "out"), "--quiet"])
    assert code == 1
    assert (tmp_path / "out" / "twinned_au.summary.json").exists()
    assert not (tmp_path / "out" / "broken.summary.json").exists()


def test_bad_options(example_scenes, tmp_path):
    with pytest.raises(SystemExit) as stop:  # argparse rejects it before anything runs
        main(["structure", str(example_scenes[0]), "-o", str(tmp_path / "o"), "--cutoff", "-2"])
    assert stop.value.code == 2
    clash = tmp_path / "twinned_au.extxyz"
    clash.write_bytes(example_scenes[0].read_bytes())
    assert main(["structure", str(example_scenes[0]), str(clash), "-o", str(tmp_path / "o")]) == 2
