"""Per-particle ground truth checked against geometry the records do not compute themselves."""

import numpy as np
import pytest

from nanofind.datasets.sample import footprint_facts
from nanofind.scene.build import build_scene
from nanofind.scene.labels import project_instances
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.particle_records import (
    nearest_zone_axis,
    particle_orientation,
    particle_records,
    particle_seeds,
    scene_particle_facts,
)
from nanofind.scene.recipe import parse_recipe

AU_CELL = np.asarray(load_unit_cell("Au").cell)


def _scene(particles, seed=0, field=(80.0, 80.0)):
    recipe = parse_recipe({"field": {"size_A": list(field)}, "substrate": None, "particles": particles})
    atoms, spec = build_scene(recipe, seed)
    return atoms, spec, scene_particle_facts(atoms, spec, seed)


def _records(atoms, facts, field=(80.0, 80.0), pixel_A=1.0):
    shape = (int(field[1] / pixel_A), int(field[0] / pixel_A))
    instance = project_instances(atoms, shape, pixel_A)
    return instance, particle_records(facts, footprint_facts(instance, pixel_A))


def test_decahedron_is_a_five_grain_mtp_with_its_boundaries_edge_on_along_the_fivefold_axis():
    _, _, facts = _scene([{"material": "Au", "shape": "decahedron", "diameter_A": 30, "position_A": [40, 40]}])
    rec = facts[1]
    assert rec["shape"] == "decahedron" and rec["defects"] == ["mtp"] and rec["n_grains"] == 5
    assert rec["zone_axis"] == "5fold" and rec["off_axis_tilt_deg"] == pytest.approx(0, abs=1e-6)
    assert rec["planar_defects_edge_on"] == [True] * 5  # every twin plane contains the five-fold axis


def test_decahedron_seen_along_a_twofold_axis_has_exactly_one_boundary_edge_on():
    # the beam runs along the vertex direction at azimuth 0: of the five boundary planes (azimuths
    # 0, 72, ... 288 degrees, all containing the five-fold axis) only the one at 0 contains it
    _, _, facts = _scene([{"material": "Au", "shape": "decahedron", "diameter_A": 30, "mtp_axis": "2fold",
                           "position_A": [40, 40]}])
    assert facts[1]["zone_axis"] == "2fold" and facts[1]["off_axis_tilt_deg"] == pytest.approx(0, abs=1e-6)
    assert facts[1]["planar_defects_edge_on"] == [True, False, False, False, False]


def test_sphere_footprint_and_volume_give_its_diameter():
    atoms, _, facts = _scene([{"material": "Au", "diameter_A": 48, "position_A": [40, 40]}])
    _, records = _records(atoms, facts)
    (rec,) = records
    # the footprint edge lies within the atom radius of the sphere surface: the outermost atoms sit up
    # to half a column spacing inside it and the footprint reaches 1.5 Å beyond them
    assert rec["equivalent_diameter_nm"] * 10 == pytest.approx(48, abs=1.0)  # one 1 Å pixel
    # the volume-equivalent diameter counts the atoms at the bulk volume per atom
    assert rec["volume_equivalent_diameter_nm"] * 10 == pytest.approx(48, rel=0.02)
    assert rec["area_px"] == pytest.approx(np.pi * 24**2, rel=0.05)
    assert rec["centroid_px"] == pytest.approx([39.5, 39.5], abs=0.5)  # centre at (40, 40) Å: pixel 39.5
    assert not rec["cut_by_edge"] and not rec["touching"] and rec["defects"] == [] and rec["n_grains"] == 1


def test_particle_across_the_field_edge_is_cut_by_it():
    atoms, _, facts = _scene([{"material": "Au", "diameter_A": 24, "position_A": [3, 40]},
                              {"material": "Au", "diameter_A": 24, "position_A": [50, 40]}])
    instance, records = _records(atoms, facts)
    by_id = {r["id"]: r for r in records}
    assert by_id[1]["cut_by_edge"] and instance[:, 0].max() == 1
    assert not by_id[2]["cut_by_edge"]
    assert by_id[1]["area_px"] < 0.75 * by_id[2]["area_px"]  # more than a third of it lies outside


@pytest.mark.parametrize("plane,edge_on", [([1, -1, 1], True), ([1, 1, 1], False)])
def test_twin_plane_edge_on_along_110_only_when_it_contains_the_beam(plane, edge_on):
    # (1-11) · [110] = 0: the plane contains the beam; (111) · [110] = 2: it is inclined 35°
    _, _, facts = _scene([{"material": "Au", "diameter_A": 30, "zone_axis": [1, 1, 0], "position_A": [40, 40],
                           "defects": {"twin": 1.0, "plane": plane}}])
    rec = facts[1]
    assert rec["defects"] == ["twin"] and rec["n_grains"] == 2
    assert rec["planar_defects_edge_on"] == [edge_on]
    assert rec["zone_axis"] == [1, 1, 0] and rec["on_zone_axis"]


def test_lamellae_faults_and_vacancies_are_named():
    _, _, facts = _scene([{"material": "Au", "diameter_A": 40, "position_A": [20, 40],
                           "defects": {"lamellae": 1.0, "lamella_count": 3}},
                          {"material": "Au", "diameter_A": 30, "position_A": [62, 40],
                           "defects": {"extrinsic_fault": 1.0, "vacancy_fraction": 0.02}}])
    assert facts[1]["defects"] == ["lamellae"] and facts[1]["n_grains"] == 4
    assert facts[1]["planar_defects_edge_on"] == [True] * 3  # default plane: edge-on
    assert facts[2]["defects"] == ["extrinsic_fault", "vacancies"] and facts[2]["n_grains"] == 1


@pytest.mark.parametrize("tilt_deg", [0.4, 5.0])
def test_known_tilt_is_reported(tilt_deg):
    _, spec, facts = _scene([{"material": "Au", "diameter_A": 24, "zone_axis": [1, 0, 0], "position_A": [40, 40],
                              "off_axis_fraction": 1.0, "off_axis_tilt_deg": tilt_deg}])
    rec = facts[1]
    assert rec["zone_axis"] == [1, 0, 0]
    assert rec["off_axis_tilt_deg"] == pytest.approx(tilt_deg, abs=1e-6)
    assert rec["on_zone_axis"] == (tilt_deg < 1.0)


def test_random_orientation_is_the_one_the_atoms_were_built_with():
    # rebuilt rotation R maps the particle's atoms back onto the fcc lattice: in the crystal frame
    # every atom of the first grain sits at half-integer cell coordinates from any other
    atoms, spec, facts = _scene([{"material": "Au", "diameter_A": 30, "zone_axis": "random",
                                  "defects": {"twin": 1.0, "plane": "random"}}], seed=5)
    p = spec["particles"][0]
    rotation, normal = particle_orientation(p, particle_seeds(5, spec["draw_attempt"], 1)[0])
    first = atoms.positions[np.asarray(atoms.arrays["grain_id"]) == 0]
    half_cells = (first - first[0]) @ rotation @ np.linalg.inv(AU_CELL) * 2
    assert np.abs(half_cells - np.round(half_cells)).max() < 1e-6
    # the twin plane separates the two grains: their atoms lie on opposite sides along its normal
    second = atoms.positions[np.asarray(atoms.arrays["grain_id"]) == 1]
    h1, h2 = first @ normal, second @ normal
    assert h1.max() <= h2.min() + 1e-6 or h2.max() <= h1.min() + 1e-6
    assert facts[1]["zone_axis"] == nearest_zone_axis(AU_CELL, rotation)[0]


def test_touching_particles_form_an_agglomerate():
    atoms, _, facts = _scene([{"material": "Au", "diameter_A": 20, "position_A": [30, 40]},
                              {"material": "Au", "diameter_A": 20, "touching_fraction": 1.0},
                              {"material": "Au", "diameter_A": 14, "position_A": [70, 70]}], seed=1)
    assert facts[1]["touching_ids"] == [2] and facts[2]["touching_ids"] == [1]
    assert facts[1]["agglomerate"] and facts[2]["agglomerate_size"] == 2
    assert not facts[3]["touching"] and facts[3]["agglomerate_size"] == 1
    # independent check: the touching pair's closest atoms are a contact distance apart in 3D
    obj = np.asarray(atoms.arrays["object_id"])
    a, b = atoms.positions[obj == 0], atoms.positions[obj == 1]
    closest = np.min(np.linalg.norm(a[:, None] - b[None], axis=-1))
    assert closest < 3.2  # Au nearest-neighbour distance 2.88 Å, within the bisection tolerance


def test_nearest_zone_axis_of_exact_orientations():
    from nanofind.scene.orientation import zone_axis_rotation

    for axis in ([1, 1, 0], [1, 1, 1], [2, 1, 1], [0, 0, 1]):
        found, tilt = nearest_zone_axis(AU_CELL, zone_axis_rotation(AU_CELL, axis, in_plane_deg=33.0))
        assert found == axis and tilt == pytest.approx(0, abs=1e-6)
