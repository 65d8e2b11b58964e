import numpy as np
import pytest
from ase import Atoms

from nanofind.scene.crystal import CrystalGenerator, PlanarDefect
from nanofind.scene.labels import column_positions, pixel_centers, project_instances, project_labels
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.orientation import zone_axis_rotation
from nanofind.scene.volumes import Sphere

AU = load_unit_cell("Au")


def _labelled(positions, grains=None, particle=None):
    atoms = Atoms("Au" * len(positions), positions=positions, cell=[40, 40, 40])
    n = len(positions)
    atoms.arrays["grain_id"] = np.zeros(n, int) if grains is None else np.asarray(grains)
    atoms.arrays["is_particle"] = np.ones(n, bool) if particle is None else np.asarray(particle)
    atoms.arrays["object_id"] = np.zeros(n, int)
    atoms.arrays["defect"] = np.zeros(n, int)
    return atoms


def test_pixel_grid_convention_rows_are_y():
    c = pixel_centers((2, 3), 0.5, origin_A=(10, 20))
    assert c[0].tolist() == [10.25, 20.25]
    assert c[1].tolist() == [10.75, 20.25]  # next column: x grows
    assert c[3].tolist() == [10.25, 20.75]  # next row: y grows


def test_single_column_counts_atoms_and_lands_on_the_right_pixel():
    atoms = _labelled([[10.25, 5.25, z] for z in (1, 3, 5, 7, 9)])
    maps = project_labels(atoms, (20, 40), 0.5, atom_radius_A=1.0, column_radius_A=0.3)
    r, c = np.unravel_index(np.argmax(maps.column_height), maps.column_height.shape)
    assert (r, c) == (10, 20)  # y = 5.25 -> row 10, x = 10.25 -> column 20
    assert maps.column_height.max() == 5
    # the footprint of one column is a disc of radius 1 Å: pi r^2 / pixel area
    assert maps.mask.sum() == pytest.approx(np.pi / 0.25, rel=0.1)


def test_substrate_atoms_do_not_enter_the_mask():
    atoms = _labelled([[10, 10, 1], [30, 30, 1]], particle=[True, False])
    maps = project_labels(atoms, (40, 40), 1.0)
    assert maps.mask[10, 10] and not maps.mask[30, 30]
    assert maps.grain[30, 30] == -1


def test_sphere_mask_area_and_central_column_height():
    rot = zone_axis_rotation(AU.cell, [1, 1, 0])
    gen = CrystalGenerator(AU, rot, defects=(PlanarDefect("twin", (1, -1, 1), 0.0),))
    g = gen.generate(Sphere([0, 0, 0], 25.0))
    atoms = _labelled(g.positions + [50, 50, 30], grains=g.grain)
    maps = project_labels(atoms, (200, 200), 0.5)
    area = maps.mask.sum() * 0.25
    # projected disc of radius R plus the 1.5 Å atom radius, minus surface roughness
    assert np.pi * 25**2 * 0.95 < area < np.pi * 26.5**2 * 1.02
    # the central [110] column holds about D / (a / sqrt 2) atoms
    assert maps.column_height.max() == pytest.approx(50 / (4.078 / np.sqrt(2)), abs=2)
    # the (1-11) twin plane contains [110]: edge-on, so the grain map splits into two halves
    assert set(np.unique(maps.grain).tolist()) == {-1, 0, 1}
    assert np.all(maps.grain[maps.mask] >= 0)
    assert (maps.grain == 0).sum() == pytest.approx((maps.grain == 1).sum(), rel=0.3)


def test_column_positions_group_atoms_along_the_beam():
    atoms = _labelled([[5, 5, 1], [5, 5, 3], [5.1, 5, 5], [10, 10, 1]], grains=[0, 0, 1, 2])
    cols = column_positions(atoms, tolerance_A=0.3)
    order = np.argsort(cols.height)
    assert cols.height[order].tolist() == [1, 3]
    assert np.allclose(cols.xy_A[order][1], [5.0333333, 5.0])
    assert cols.grain[order].tolist() == [2, 0]


def _objects(positions, object_ids, particle=None):
    atoms = _labelled(positions, particle=particle)
    atoms.arrays["object_id"] = np.asarray(object_ids)
    return atoms


def test_instances_number_particles_by_object_and_cover_exactly_the_mask():
    rot = zone_axis_rotation(AU.cell, [1, 1, 0])
    g = CrystalGenerator(AU, rot).generate(Sphere([0, 0, 0], 6.0))
    n = len(g.positions)
    positions = np.vstack([g.positions + [10, 10, 20], g.positions + [28, 25, 20], [[30, 8, 1]]])
    atoms = _objects(positions, [0] * n + [1] * n + [2], particle=[True] * (2 * n) + [False])
    instance = project_instances(atoms, (80, 80), 0.5)
    maps = project_labels(atoms, (80, 80), 0.5)
    np.testing.assert_array_equal(instance > 0, maps.mask)
    assert instance.dtype == np.int32 and set(np.unique(instance).tolist()) == {0, 1, 2}
    assert instance[20, 20] == 1 and instance[50, 56] == 2  # sphere centres (10, 10) and (28, 25) Å
    assert instance[16, 60] == 0  # the substrate atom at (30, 8) Å is no particle


def test_overlapping_footprints_go_to_the_particle_with_more_atoms_there():
    # a five-atom column of particle A at x = 10 Å and a one-atom column of B at x = 12 Å: their
    # 1.5 Å footprints overlap; the midpoint goes to A, but B keeps its own centre
    positions = [[10.25, 10.25, z] for z in (1, 3, 5, 7, 9)] + [[12.25, 10.25, 5]]
    atoms = _objects(positions, [0] * 5 + [1])
    instance = project_instances(atoms, (40, 40), 0.5)
    row = 20  # y = 10.25 Å
    assert instance[row, 20] == 1 and instance[row, 22] == 1  # x = 10.25 and 11.25 Å
    assert instance[row, 24] == 2  # x = 12.25 Å
    np.testing.assert_array_equal(instance > 0, project_labels(atoms, (40, 40), 0.5).mask)
