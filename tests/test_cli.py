"""The command line, end to end, and the acceptance checks of the example recipes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from ase.data import atomic_masses

from nanofind import __version__
from nanofind.cli import main
from nanofind.scene.amorphous import AVOGADRO
from nanofind.scene.io import read_scene
from nanofind.scene.labels import LABEL_ARRAYS, project_labels
from nanofind.scene.neighbours import min_distances_by_pair


def _run(*args):
    return subprocess.run([sys.executable, "-m", "nanofind", *args], capture_output=True, text=True)


def test_version():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"nanofind {__version__}"


@pytest.fixture(scope="module")
def au5nm(tmp_path_factory):
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "au5nm_110_on_carbon.yaml"
    out = tmp_path_factory.mktemp("au5nm") / "au.extxyz"
    assert main(["scene", str(recipe), "-o", str(out), "--seed", "7", "--also", "prismatic", "--also", "cif",
                 "--preview", str(out.with_suffix(".png"))]) == 0
    return out


def test_au5nm_example_meets_acceptance(au5nm):
    atoms = read_scene(au5nm)
    for key in LABEL_ARRAYS:
        assert key in atoms.arrays
    au = atoms.numbers == 79
    c = atoms.numbers == 6
    ideal_au = 4 / 3 * np.pi * 25.0**3 / (4.078**3 / 4)  # fcc, 4 atoms per a^3
    assert abs(au.sum() - ideal_au) / ideal_au < 0.03
    ideal_c = 2.0 * 60 * 60 * 20 * 1e-24 * AVOGADRO / atomic_masses[6]
    assert abs(c.sum() - ideal_c) / ideal_c < 0.03
    d = min_distances_by_pair(atoms.positions, atoms.get_chemical_symbols(), lateral_period_A=(60, 60))
    assert d["C-C"] >= 1.3 and d["Au-C"] >= 2.0
    assert atoms.arrays["is_particle"][au].all() and not atoms.arrays["is_particle"][c].any()
    assert set(atoms.arrays["grain_id"][c].tolist()) == {-1}
    # recipe and seed travel with the output
    assert atoms.info["nanofind_seed"] == 7
    assert atoms.info["nanofind_recipe"]["particles"][0]["zone_axis"] == [1, 1, 0]
    assert atoms.info["nanofind_spec"]["particles"][0]["diameter_A"] == 50.0
    # the [110] particle projects to a disc with a solid mask
    maps = project_labels(atoms, (120, 120), 0.5)
    assert np.pi * 24**2 < maps.mask.sum() * 0.25 < np.pi * 27**2


def test_extra_formats_written(au5nm):
    prismatic = au5nm.with_name("au.prismatic.xyz")
    lines = prismatic.read_text().splitlines()
    atoms = read_scene(au5nm)
    assert len(lines) == len(atoms) + 3 and lines[-1] == "-1"
    z, x, y, zz, occ, sigma = lines[2].split()
    assert int(z) in (6, 79) and float(occ) == 1.0 and float(sigma) > 0
    assert au5nm.with_name("au.cif").exists()
    png = au5nm.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 2 * height > 400  # three panels side by side
    assert oct(au5nm.stat().st_mode & 0o777) != oct(0o600)


def test_same_recipe_and_seed_give_identical_files(tmp_path, recipes_dir):
    a, b = tmp_path / "a.extxyz", tmp_path / "b.extxyz"
    for out in (a, b):
        assert main(["scene", str(recipes_dir / "decahedron_au.yaml"), "-o", str(out), "--seed", "3"]) == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("name,grains", [("twinned_au", 2), ("decahedron_au", 5), ("icosahedron_au", 20)])
def test_example_grain_counts(tmp_path, recipes_dir, name, grains):
    out = tmp_path / f"{name}.extxyz"
    assert main(["scene", str(recipes_dir / f"{name}.yaml"), "-o", str(out), "--json"]) == 0
    atoms = read_scene(out)
    g = atoms.arrays["grain_id"][atoms.arrays["is_particle"]]
    assert len(set(g.tolist())) == grains
    d = min_distances_by_pair(atoms.positions, atoms.get_chemical_symbols(), lateral_period_A=atoms.cell.lengths()[:2])
    assert d["Au-C"] >= 2.0 and d["C-C"] >= 1.3 and d["Au-Au"] > 2.7


def test_summary_json(tmp_path, recipes_dir, capsys):
    out = tmp_path / "c.extxyz"
    assert main(["scene", str(recipes_dir / "twinned_au.yaml"), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["min_distance_A"]["Au-C"] >= 2.0
    assert [o["name"] for o in summary["objects"]] == ["Au sphere", "substrate"]
    assert summary["build_seconds"] > 0


def _bad(tmp_path, text):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    out = tmp_path / "out.extxyz"
    result = _run("scene", str(recipe), "-o", str(out))
    return result, out


@pytest.mark.parametrize("text,field", [
    ("particles:\n  - diameter_A: 50\n    colour: red\n", "particles[0].colour: unknown key"),
    ("particles:\n  - diameter_A: -50\n", "particles[0].diameter_A: must be > 0"),
    ("particles:\n  - zone_axis: [0, 0, 0]\n", "particles[0].zone_axis: zone axis cannot be zero"),
    ("substrate:\n  density_g_cm3: 5.0\n  min_distance_A: 1.6\nfield: {size_A: [20, 20]}\n",
     "density_g_cm3: density 5.0 g/cm³ cannot be packed"),
    ("particles: [\n", "not valid YAML"),
    ("- just\n- a list\n", "a recipe must be a mapping"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, text, field):
    result, out = _bad(tmp_path, text)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in result.stderr
    assert "bad.yaml" in lines[0] or "density" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".out.extxyz*"))


def test_unwritable_output_and_missing_recipe(tmp_path, recipes_dir):
    result = _run("scene", str(recipes_dir / "twinned_au.yaml"), "-o", str(tmp_path / "no" / "dir" / "x.extxyz"))
    assert result.returncode == 2 and "does not exist" in result.stderr and len(result.stderr.splitlines()) == 1
    result = _run("scene", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "x.extxyz"))
    assert result.returncode == 2 and "missing.yaml" in result.stderr and len(result.stderr.splitlines()) == 1
    result = _run("scene", str(recipes_dir / "twinned_au.yaml"), "-o", str(tmp_path / "x.pdb"))
    assert result.returncode == 2 and "x.pdb" in result.stderr


@pytest.mark.parametrize("args", [("scene",), ("scene", "x.yaml", "-o", "x.extxyz", "--seed", "-1"),
                                  ("scene", "x.yaml", "-o", "x.extxyz", "--seed", "abc")])
def test_usage_errors_exit_2(args):
    result = _run(*args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def _two_crops(folder):
    """Two small fields cut from the bundled examples, with their pixel sizes (MRC)."""
    import mrcfile

    from nanofind.analyze.pipeline import EXAMPLES_DIR
    from nanofind.io.micrograph import read_micrograph

    folder.mkdir()
    for name in ("example_01.mrc", "example_02.mrc"):
        m = read_micrograph(EXAMPLES_DIR / name)
        with mrcfile.new(folder / name) as mrc:
            mrc.set_data(np.ascontiguousarray(m.array[96:288, 64:256], np.float32))
            mrc.voxel_size = m.pixel_size_A
    return folder


def _segment_outputs(out):
    import tifffile

    return {p.name: p.read_bytes() if p.suffix == ".png" else tifffile.imread(p) for p in sorted(out.iterdir())}


def _without_times(err):
    """The messages of a segment run, without the seconds each frame took."""
    import re

    return [re.sub(r"[0-9.]+ s -> (.*)/out\d/", r"s -> \1/out/", line) for line in err.splitlines()]


def test_segment_workers_write_the_serial_files_and_messages(tmp_path, capsys):
    from PIL import Image

    crops = _two_crops(tmp_path / "in")
    (crops / "broken.mrc").write_bytes(b"\x00\x01not an mrc" * 40)
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        assert main(["segment", str(crops), "-o", str(out), "--workers", workers]) == 1  # the broken file
        runs[workers] = (_segment_outputs(out), _without_times(capsys.readouterr().err))
    serial_files, parallel_files = runs["1"][0], runs["2"][0]
    assert serial_files.keys() == parallel_files.keys()
    for name, content in serial_files.items():
        if name.endswith(".png"):
            assert parallel_files[name] == content, name  # masks: the same bytes
        else:  # a worker's network runs on fewer threads: the same sums in another order (last bits only)
            np.testing.assert_allclose(parallel_files[name], content, rtol=0, atol=1e-6)
    assert sorted(serial_files) == ["example_01_mask.png", "example_01_prob.tif", "example_02_mask.png",
                                    "example_02_prob.tif"]
    mask = np.asarray(Image.open(tmp_path / "out2" / "example_01_mask.png"))
    assert mask.shape == (192, 192) and set(np.unique(mask)) == {0, 255}  # a particle and background
    # the same lines in input order (the broken file comes first); only the engine line says how it ran
    serial, parallel = runs["1"][1], runs["2"][1]
    assert "running" in serial[0] and "2 workers" in parallel[0]
    assert serial[1:] == parallel[1:] and "broken.mrc" in serial[1] and "example_01" in serial[2]
    assert serial[-1].startswith("nanofind: 1 of 3 files failed")


def test_segment_parallel_options_are_usage_errors(tmp_path, capsys):
    crops = _two_crops(tmp_path / "in")
    for args in (["--workers", "0"], ["--workers", "x"]):
        with pytest.raises(SystemExit) as usage:
            main(["segment", str(crops), "-o", str(tmp_path / "out"), *args])
        assert usage.value.code == 2
    assert main(["segment", str(crops), "-o", str(tmp_path / "out"), "--workers", "5", "--max-memory", "4"]) == 2
    assert main(["segment", str(crops), "-o", str(tmp_path / "out"), "--scheduler", "tcp://",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "--workers" in err[0] and "--max-memory" in err[2] and "--scheduler" in err[3]
