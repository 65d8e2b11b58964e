"""build_scene's provenance, the concrete particle's defaults, and substrates reused between scenes."""

import json

import numpy as np
import pytest

import nanofind
from nanofind.errors import NanofindInputError
from nanofind.scene import build
from nanofind.scene.build import build_scene, build_scene_from_spec, particle_object
from nanofind.scene.concrete import ConcreteParticle
from nanofind.scene.crystal import CrystalGenerator
from nanofind.scene.io import write_extxyz
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.recipe import load_recipe, parse_recipe, sample_scene_spec
from nanofind.scene.scene import SceneObject
from nanofind.scene.volumes import Sphere

SMALL = """\
field: {size_A: [30, 30]}
substrate: {thickness_A: 6}
particles:
  - {material: Au, diameter_A: {uniform: [10, 12]}, position_A: [15, 15]}
"""


def test_build_scene_records_its_provenance():
    recipe = parse_recipe({"field": {"size_A": [30, 30]}, "substrate": {"thickness_A": 5},
                           "particles": [{"material": "Pt", "diameter_A": 10, "position_A": [15, 15]}]})
    atoms, spec = build_scene(recipe, 7)
    assert atoms.info["nanofind_seed"] == 7
    assert atoms.info["nanofind_spec"] is spec
    assert atoms.info["nanofind_version"] == nanofind.__version__
    assert atoms.info["nanofind_recipe"]["particles"][0]["material"] == "Pt"
    assert parse_recipe(atoms.info["nanofind_recipe"]) == recipe  # the stored recipe is the recipe
    assert "nanofind_recipe_path" not in atoms.info
    json.dumps({k: atoms.info[k] for k in ("nanofind_recipe", "nanofind_spec")})  # storable as JSON


def test_python_build_writes_the_file_the_cli_writes(tmp_path, capsys):
    from nanofind.cli import main

    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    assert main(["scene", str(path), "-o", str(tmp_path / "cli.extxyz"), "--seed", "3", "--json"]) == 0
    capsys.readouterr()
    atoms, _ = build_scene(load_recipe(path), 3, recipe_path=str(path))
    assert atoms.info["nanofind_recipe_path"] == str(path)
    write_extxyz(tmp_path / "python.extxyz", atoms)
    assert (tmp_path / "python.extxyz").read_bytes() == (tmp_path / "cli.extxyz").read_bytes()


def _atoms_equal(a, b):
    return np.array_equal(a.numbers, b.numbers) and np.array_equal(a.positions, b.positions)


@pytest.mark.parametrize("shape, axis", [("sphere", [1.0, 1.0, 0.0]), ("decahedron", "5fold")])
def test_a_field_left_out_of_a_recipe_or_a_spec_means_the_same_particle(shape, axis):
    # the recipe states the material, shape and size only; every other field takes its default
    recipe = parse_recipe({"substrate": None, "particles": [{"material": "Au", "shape": shape, "diameter_A": 16}]})
    drawn = sample_scene_spec(recipe, 0)["particles"][0]
    assert drawn["zone_axis"] == axis  # [110] for a single crystal, the five-fold axis for a decahedron
    bare = {"material": "Au", "shape": shape, "diameter_A": 16}
    assert ConcreteParticle.from_mapping(bare).to_dict() == drawn
    assert _atoms_equal(particle_object(drawn, 5).local_atoms(), particle_object(bare, 5).local_atoms())


def test_drawn_particle_survives_a_json_round_trip():
    recipe = parse_recipe({"substrate": None, "particles": [{
        "material": {"choice": ["Au", "Pt"]}, "shape": "wulff", "diameter_A": {"uniform": [20, 30]},
        "zone_axis": "random", "off_axis_fraction": 1.0, "defects": {"lamellae": 1.0, "vacancy_fraction": 0.05}}]})
    drawn = sample_scene_spec(recipe, 4)["particles"][0]
    assert drawn["planar_defect"] == "lamellae" and drawn["tilt_deg"] > 0
    again = ConcreteParticle.from_mapping(json.loads(json.dumps(drawn))).to_dict()
    assert again == drawn and list(again) == list(drawn)


@pytest.mark.parametrize("spec, field", [({"diameter": 10}, "diameter"), ({"diameter_A": 0}, "diameter_A"),
                                         ({"tilt_deg": "steep"}, "tilt_deg")])
def test_bad_particle_specs_name_the_field(spec, field):
    with pytest.raises(NanofindInputError) as err:
        build_scene_from_spec({"field_A": [30, 30], "substrate": None, "particles": [spec]}, 0)
    assert err.value.field == f"particles[0].{field}"


def test_object_from_generated_atoms_never_runs_its_generator():
    class Refuses:
        def generate(self, volume, rng):
            raise AssertionError("generated again")

    made = SceneObject(CrystalGenerator(load_unit_cell("Au")), Sphere([0, 0, 0], 6.0), vacancy_fraction=0.2, seed=1)
    reused = SceneObject.from_generated(made.local_atoms(), Refuses(), made.volume, vacancy_fraction=0.2, seed=1)
    assert _atoms_equal(reused.atoms(), made.atoms())  # vacancies are not applied a second time
    moved = reused.translated([1.0, 2.0, 3.0])
    np.testing.assert_allclose(moved.atoms().positions, made.atoms().positions + [1.0, 2.0, 3.0])


def test_reused_substrate_is_the_substrate_packed_afresh(monkeypatch):
    monkeypatch.setattr(build, "_SUBSTRATE_ATOMS", build.OrderedDict())
    spec = {"field_A": [30, 30], "particles": [],
            "substrate": {"composition": {"C": 1.0}, "thickness_A": 6.0, "density_g_cm3": 2.0,
                          "min_distance_A": 1.3, "seed": 11}}
    first = build_scene_from_spec(spec, 0)
    assert len(build._SUBSTRATE_ATOMS) == 1

    def refuse(self, volume, rng):
        raise AssertionError("packed again")

    monkeypatch.setattr(build.AmorphousGenerator, "generate", refuse)
    second = build_scene_from_spec(spec, 1)  # another scene seed: the named substrate seed decides
    assert len(build._SUBSTRATE_ATOMS) == 1
    assert _atoms_equal(first, second) and len(first) > 100
