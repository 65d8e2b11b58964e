"""Per-atom classes of crystals and nanofind particles, checked against their geometry and labels."""

from collections import Counter

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.scene.crystal import CrystalGenerator, PlanarDefect
from nanofind.scene.labels import DefectFlag
from nanofind.scene.lattice import load_unit_cell, plane_normal
from nanofind.scene.orientation import zone_axis_rotation
from nanofind.scene.volumes import Sphere
from nanofind.structure.local import _bounded_query, local_structure

AU = load_unit_cell("Au")


def _ball(crystal: Atoms, radius_A: float) -> Atoms:
    centre = crystal.positions.mean(axis=0)
    keep = np.linalg.norm(crystal.positions - centre, axis=1) < radius_A
    return Atoms(numbers=crystal.numbers[keep], positions=crystal.positions[keep])


def _particle(generator, radius_A=18.0, noise_A=0.0, seed=0) -> Atoms:
    g = generator.generate(Sphere([0, 0, 0], radius_A))
    pos = g.positions + np.random.default_rng(seed).normal(0, noise_A, g.positions.shape)
    atoms = Atoms(numbers=g.numbers, positions=pos)
    atoms.arrays["defect"] = g.defect
    return atoms


@pytest.mark.parametrize("crystal,expected,coordination", [
    (bulk("Cu", "fcc", a=3.615, cubic=True).repeat(8), "fcc", 12),
    (bulk("Mg", "hcp", a=3.21, c=3.21 * np.sqrt(8 / 3)).repeat((9, 9, 6)), "hcp", 12),
    (bulk("Fe", "bcc", a=2.87, cubic=True).repeat(9), "bcc", 14),
])
def test_bulk_crystals_are_recognised_with_their_coordination(crystal, expected, coordination):
    atoms = _ball(crystal, 11.0)
    local = local_structure(atoms)
    centre = np.linalg.norm(atoms.positions - atoms.positions.mean(axis=0), axis=1) < 6.0
    assert set(local.class_names[centre]) == {expected}
    assert set(local.coordination[centre].tolist()) == {coordination}
    assert local.nn_distance_A[0] == pytest.approx(np.sort(cKDTree(atoms.positions).query(atoms.positions, 2)[0][:, 1])[
        len(atoms) // 2], rel=1e-6)


def test_perfect_fcc_particle_is_all_fcc_inside_and_surface_outside():
    atoms = _particle(CrystalGenerator(AU, zone_axis_rotation(AU.cell, [1, 1, 0])), radius_A=20.0)
    local = local_structure(atoms)
    full = local.coordination == 12
    assert full.sum() > 1000
    assert np.all(local.class_names[full] == "fcc")
    assert np.allclose(local.order["fcc"][full], 12.0, atol=1e-3)
    assert np.allclose(local.order["hcp"][full], 9.0, atol=1e-3)
    # sites missing three or more neighbours are on the surface; facets have 9 or fewer
    assert set(local.class_names[local.coordination < 10]) == {"surface"}
    assert Counter(local.class_names)["disordered"] == 0


def test_twin_plane_atoms_are_the_only_hcp_atoms():
    atoms = _particle(CrystalGenerator(AU, defects=(PlanarDefect("twin", (1, 1, 1), 0.7),)))
    local = local_structure(atoms)
    on_plane = (atoms.arrays["defect"] & DefectFlag.TWIN_BOUNDARY) > 0
    inside = local.coordination >= 12
    assert np.all(local.class_names[on_plane & inside] == "hcp")
    assert np.all(local.class_names[~on_plane & inside] == "fcc")


def test_thermal_noise_keeps_bulk_atoms():
    gen = CrystalGenerator(AU, defects=(PlanarDefect("twin", (1, 1, 1), 0.7),))
    clean = local_structure(_particle(gen, radius_A=20.0))
    noisy = local_structure(_particle(gen, radius_A=20.0, noise_A=0.1, seed=7))  # 0.1 Å rms along each axis
    bulk_atoms = clean.coordination >= 12
    agree = np.mean(noisy.class_names[bulk_atoms] == clean.class_names[bulk_atoms])
    assert agree >= 0.95
    assert np.mean(noisy.order["fcc"][bulk_atoms & (clean.class_names == "fcc")]) < 11.5  # the noise is real


def test_compound_is_analysed_per_sublattice():
    # zinc blende: each element's sublattice is fcc; wurtzite: hcp. Neither is close-packed as a whole.
    for material, expected in (("CdSe-zb", "fcc"), ("CdSe", "hcp")):
        atoms = _particle(CrystalGenerator(load_unit_cell(material)), radius_A=22.0)
        local = local_structure(atoms)
        assert sorted(local.group_element) == ["Cd", "Se"]
        inside = local.coordination == 12
        assert inside.sum() > 300
        assert set(local.class_names[inside]) == {expected}
        never = local_structure(atoms, sublattices="never")
        assert "fcc" not in set(never.class_names) and "hcp" not in set(never.class_names)


def test_scene_substrate_is_not_analysed_and_objects_stay_apart(recipes_dir):
    from nanofind.scene.build import build_scene
    from nanofind.scene.recipe import load_recipe

    atoms, _ = build_scene(load_recipe(recipes_dir / "twinned_au.yaml"), 0)
    local = local_structure(atoms)
    particle = atoms.arrays["is_particle"].astype(bool)
    assert set(local.class_names[~particle]) == {"other"}
    assert np.all(local.coordination[~particle] == -1)
    # atoms touching the carbon keep only their particle neighbours
    assert local.coordination[particle].max() == 12
    assert set(local.particle[particle].tolist()) == {0}


def test_without_object_ids_clusters_are_particles():
    a = _particle(CrystalGenerator(AU), radius_A=10.0)
    b = a.copy()
    b.positions += [40.0, 0, 0]
    local = local_structure(a + b)
    assert sorted(Counter(local.particle.tolist()).values()) == [len(a), len(b)]


def test_explicit_cutoff_and_bad_options():
    atoms = _ball(bulk("Pd", "fcc", a=3.89, cubic=True).repeat(6), 8.0)
    seed_cutoff = local_structure(atoms, cutoff_A=3.75)  # seed 004's value for Pd
    assert seed_cutoff.cutoff_A[0] == 3.75
    assert local_structure(atoms, cutoff_A=2.0).coordination.max() == 0
    with pytest.raises(NanofindInputError, match="cutoff_A"):
        local_structure(atoms, cutoff_A=-1)
    with pytest.raises(NanofindInputError, match="sublattices"):
        local_structure(atoms, sublattices="sometimes")


def test_stacking_normal_of_hcp_sites_is_the_plane_normal():
    gen = CrystalGenerator(AU, defects=(PlanarDefect("twin", (1, 1, 1), 0.7),))
    local = local_structure(_particle(gen))
    hcp = local.class_names == "hcp"
    c_axes = local.rotation["hcp"][hcp][:, :, 2]
    normal = plane_normal(AU.cell, (1, 1, 1))
    assert np.all(np.abs(c_axes @ normal) > np.cos(np.radians(3)))


def test_bounded_neighbour_query_equals_the_plain_query():
    # a dense fcc block (the bound prunes), a sparse gas and far-off strays (the bound falls short)
    rng = np.random.default_rng(3)
    block = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((14, 14, 14)).positions
    block = block + rng.normal(0, 0.05, block.shape)
    gas = rng.uniform(-200, -60, (3000, 3))
    strays = np.array([[500.0, 0, 0], [0, 800.0, 0], [-900.0, -900.0, 900.0]])
    points = np.concatenate([block, gas, strays])
    tree = cKDTree(points)
    d, idx = _bounded_query(tree, points, 15)
    d_ref, idx_ref = tree.query(points, k=15)
    np.testing.assert_array_equal(d, d_ref)
    np.testing.assert_array_equal(idx, idx_ref)
