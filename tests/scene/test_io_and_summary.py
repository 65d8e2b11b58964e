"""Scene files and summaries: the extxyz writer matches ASE's, minimum distances match brute force."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.constraints import FixAtoms
from ase.io import read, write
from scipy.spatial.distance import cdist

from nanofind.scene.build import build_scene
from nanofind.scene.io import _JSON_INFO, read_scene, write_extxyz
from nanofind.scene.labels import LABEL_ARRAYS
from nanofind.scene.neighbours import min_distances_by_pair
from nanofind.scene.recipe import parse_recipe
from nanofind.scene.summary import summarize_scene

FIELD = (30.0, 30.0)


@pytest.fixture(scope="module")
def small_scene():
    """Au and Pt particles on carbon, about 2000 atoms: small enough for all-pairs distances."""
    recipe = parse_recipe({
        "field": {"size_A": list(FIELD)},
        "substrate": {"thickness_A": 10},
        "particles": [{"material": "Au", "shape": "sphere", "diameter_A": 12, "position_A": [8, 15]},
                      {"material": "Pt", "shape": "sphere", "diameter_A": 10, "position_A": [23, 15]}],
    })
    atoms, _ = build_scene(recipe, 3)  # with its provenance: recipe, spec, seed, version
    return atoms


def _brute_force_min(positions, symbols, cutoff=8.0, period=None):
    """Every pair and every lateral periodic image, with scipy.spatial.distance."""
    positions = np.asarray(positions, float)
    symbols = np.asarray(symbols)
    if period is not None:
        positions = positions.copy()
        positions[:, :2] %= period
    shifts = [(0.0, 0.0)] if period is None else [(a * period[0], b * period[1])
                                                 for a in (-1, 0, 1) for b in (-1, 0, 1)]
    elements = sorted(set(symbols.tolist()))
    result = {}
    for k, a in enumerate(elements):
        pa = positions[symbols == a]
        for b in elements[k:]:
            pb = positions[symbols == b]
            best = np.inf
            for sx, sy in shifts:
                d = cdist(pa, pb + [sx, sy, 0.0])
                if a == b and sx == sy == 0:
                    np.fill_diagonal(d, np.inf)  # an atom and itself
                if d.size:
                    best = min(best, float(d.min()))
            result[f"{a}-{b}"] = best if best < cutoff else np.inf
    return result


def _assert_same_minima(got, expected):
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if np.isinf(value):
            assert np.isinf(got[key]), key
        else:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_min_distances_equal_brute_force_on_a_built_scene(small_scene):
    atoms = small_scene
    symbols = atoms.get_chemical_symbols()
    assert {"Au", "Pt", "C"} <= set(symbols)
    expected = _brute_force_min(atoms.positions, symbols, period=FIELD)
    _assert_same_minima(min_distances_by_pair(atoms.positions, symbols, lateral_period_A=FIELD), expected)
    _assert_same_minima(min_distances_by_pair(atoms.positions, symbols), _brute_force_min(atoms.positions, symbols))
    summary = summarize_scene(atoms)
    assert summary["min_distance_A"] == {k: round(v, 4) for k, v in expected.items()}


@pytest.mark.parametrize("seed", range(6))
def test_min_distances_equal_brute_force_on_random_points(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    period = (20.0, 16.0)
    pos = rng.uniform([-5, -5, 0], [25, 21, 12], (n, 3))  # some outside the cell: wrapped laterally
    symbols = rng.choice(["C", "O", "Si", "Au"][: 1 + seed % 4], n)
    if seed % 2:
        pos[1] = pos[0] + [period[0], 0, 0]  # the same site one period away: distance 0
    for cutoff in (8.0, 1.2):
        _assert_same_minima(min_distances_by_pair(pos, symbols, cutoff, period),
                            _brute_force_min(pos, symbols, cutoff, period))
        _assert_same_minima(min_distances_by_pair(pos, symbols, cutoff), _brute_force_min(pos, symbols, cutoff))


def test_min_distance_across_the_lateral_boundary_and_missing_pairs():
    pos = np.array([[0.1, 5.0, 3.0], [19.8, 5.0, 3.0], [10.0, 10.0, 3.0], [10.0, 10.0, 30.0]])
    d = min_distances_by_pair(pos, ["C", "C", "Au", "O"], lateral_period_A=(20.0, 20.0))
    assert d["C-C"] == pytest.approx(0.3)  # through the periodic boundary, not 19.7 Å
    assert d["Au-Au"] == d["O-O"] == np.inf  # one atom of the element
    assert d["Au-O"] == np.inf  # 27 Å apart, beyond the 8 Å cut-off (z is not periodic)
    _assert_same_minima(d, _brute_force_min(pos, ["C", "C", "Au", "O"], period=(20.0, 20.0)))


def _ase_reference(path, atoms):
    """What write_extxyz wrote before it had its own row formatting: ASE's writer on a copy."""
    out = atoms.copy()
    for key in _JSON_INFO:
        if key in out.info and not isinstance(out.info[key], str):
            out.info[key] = json.dumps(out.info[key], sort_keys=True)
    out.info.pop("object_names", None)
    out.info["object_names"] = json.dumps(atoms.info.get("object_names", []))
    write(path, out, format="extxyz")


@pytest.mark.parametrize("chunk", [8192, 7])
def test_extxyz_is_what_ase_writes_and_round_trips(small_scene, tmp_path, monkeypatch, chunk):
    monkeypatch.setattr("nanofind.scene.io._EXTXYZ_CHUNK", chunk)  # rows formatted per block
    atoms = small_scene
    write_extxyz(tmp_path / "scene.extxyz", atoms)
    _ase_reference(tmp_path / "ase.extxyz", atoms)
    assert (tmp_path / "scene.extxyz").read_bytes() == (tmp_path / "ase.extxyz").read_bytes()
    back = read_scene(tmp_path / "scene.extxyz")
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-8)
    np.testing.assert_array_equal(back.cell[:], atoms.cell[:])
    assert list(back.pbc) == list(atoms.pbc)
    for key in LABEL_ARRAYS:
        np.testing.assert_array_equal(back.arrays[key], atoms.arrays[key])
    for key in ("nanofind_recipe", "nanofind_spec", "object_names", "nanofind_seed", "nanofind_version"):
        assert back.info[key] == json.loads(json.dumps(atoms.info[key])), key
    # and ASE reads it as it reads its own file
    mine, theirs = read(tmp_path / "scene.extxyz"), read(tmp_path / "ase.extxyz")
    assert mine.info == theirs.info and mine.arrays.keys() == theirs.arrays.keys()
    for key in mine.arrays:
        np.testing.assert_array_equal(mine.arrays[key], theirs.arrays[key])


def test_extxyz_other_arrays_match_ase_and_unusual_atoms_fall_back_to_ase(tmp_path):
    rng = np.random.default_rng(0)
    atoms = Atoms("Au3CO", positions=rng.uniform(-50, 50, (5, 3)), cell=[10, 11, 12], pbc=(True, True, False))
    atoms.arrays["object_id"] = np.array([0, 0, 0, 1, 1], np.int32)
    atoms.arrays["vec"] = rng.normal(size=(5, 3)) * 1e3
    atoms.arrays["flag"] = np.array([True, False, True, True, False])
    atoms.arrays["tag"] = np.array(["a", "bb", "c", "dd", "e"])
    atoms.arrays["col"] = np.arange(5, dtype=np.int64).reshape(5, 1)
    atoms.info.update({"object_names": ["x", "y"], "nanofind_seed": 4, "note": "a b", "value": 1.5})
    write_extxyz(tmp_path / "mine.extxyz", atoms)
    _ase_reference(tmp_path / "ase.extxyz", atoms)
    assert (tmp_path / "mine.extxyz").read_bytes() == (tmp_path / "ase.extxyz").read_bytes()
    empty = Atoms(cell=[5, 5, 5], pbc=(True, True, False))
    empty.arrays["object_id"] = np.zeros(0, np.int32)
    write_extxyz(tmp_path / "empty.extxyz", empty)
    _ase_reference(tmp_path / "empty_ase.extxyz", empty)
    assert (tmp_path / "empty.extxyz").read_bytes() == (tmp_path / "empty_ase.extxyz").read_bytes()
    # constraints become an extra column in ASE: left to ASE itself
    atoms.set_constraint(FixAtoms(indices=[0]))
    write_extxyz(tmp_path / "fixed.extxyz", atoms)
    _ase_reference(tmp_path / "fixed_ase.extxyz", atoms)
    assert (tmp_path / "fixed.extxyz").read_bytes() == (tmp_path / "fixed_ase.extxyz").read_bytes()
    assert "move_mask" in (tmp_path / "fixed.extxyz").read_text().splitlines()[1]
