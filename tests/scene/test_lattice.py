import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from nanofind.errors import NanofindInputError
from nanofind.scene.lattice import (
    direction_vector,
    equivalent_plane_normals,
    lattice_rotations,
    load_unit_cell,
    miller_bravais_to_miller,
    nearest_neighbour_distance,
    plane_normal,
    plane_spacing,
)


def test_library_gold_is_conventional_fcc():
    au = load_unit_cell("Au")
    assert len(au) == 4
    assert np.allclose(au.cell.lengths(), 4.078)
    assert nearest_neighbour_distance(au) == pytest.approx(4.078 / np.sqrt(2))


def test_unit_cell_from_atoms_bulk_mapping_and_cif(tmp_path):
    cu = bulk("Cu", "fcc", a=3.615, cubic=True)
    assert load_unit_cell(cu).get_chemical_formula() == "Cu4"
    assert len(load_unit_cell({"bulk": {"name": "Ni", "crystalstructure": "fcc", "a": 3.52}})) == 1
    path = tmp_path / "ceo2.cif"
    write(path, bulk("CeO2", "fluorite", a=5.411, cubic=True))
    from_cif = load_unit_cell(str(path))
    assert sorted(from_cif.get_chemical_symbols()).count("O") == 8
    assert np.allclose(from_cif.cell.lengths(), 5.411, atol=1e-4)


def test_unknown_material_and_missing_cif_name_the_field(tmp_path):
    with pytest.raises(NanofindInputError, match="material: unknown material 'Unobtainium'"):
        load_unit_cell("Unobtainium")
    with pytest.raises(NanofindInputError, match="CIF file not found"):
        load_unit_cell(str(tmp_path / "missing.cif"))


def test_miller_bravais_conversion():
    assert miller_bravais_to_miller([2, -1, -1, 0], "direction").tolist() == [3, 0, 0]
    assert miller_bravais_to_miller([1, 0, -1, 0], "direction").tolist() == [2, 1, 0]
    assert miller_bravais_to_miller([1, 0, -1, 1], "plane").tolist() == [1, 0, 1]
    with pytest.raises(NanofindInputError, match="third index"):
        miller_bravais_to_miller([1, 1, 1, 0], "plane")


def test_hexagonal_directions_and_planes_are_geometric():
    cdse = load_unit_cell("CdSe")
    cell = np.asarray(cdse.cell)
    # [2-1-10] is along a1; [0001] along c; (0001) normal along c
    assert np.allclose(np.cross(direction_vector(cell, [2, -1, -1, 0]), cell[0]), 0, atol=1e-9)
    assert np.allclose(plane_normal(cell, [0, 0, 0, 1]), [0, 0, 1])
    # (10-10) normal is perpendicular to c and to a2 + ... : it is perpendicular to [1-210]
    n = plane_normal(cell, [1, 0, -1, 0])
    assert abs(n @ direction_vector(cell, [1, -2, 1, 0])) < 1e-9
    assert plane_spacing(cell, [0, 0, 0, 1]) == pytest.approx(7.010)
    # d(10-10) = sqrt(3)/2 a
    assert plane_spacing(cell, [1, 0, -1, 0]) == pytest.approx(np.sqrt(3) / 2 * 4.299)


def test_point_group_sizes_and_families():
    au = np.asarray(load_unit_cell("Au").cell)
    hexa = np.asarray(load_unit_cell("CdSe").cell)
    assert len(lattice_rotations(au)) == 48  # m-3m
    assert len(lattice_rotations(hexa)) == 24  # 6/mmm
    assert len(equivalent_plane_normals(au, [1, 1, 1])) == 8
    assert len(equivalent_plane_normals(au, [1, 0, 0])) == 6
    assert len(equivalent_plane_normals(au, [1, 1, 0])) == 12
    assert len(equivalent_plane_normals(hexa, [1, 0, -1, 0])) == 6
    assert len(equivalent_plane_normals(hexa, [0, 0, 0, 1])) == 2


def test_fcc_111_spacing():
    assert plane_spacing(load_unit_cell("Au").cell, [1, 1, 1]) == pytest.approx(4.078 / np.sqrt(3))


def test_zero_index_rejected():
    with pytest.raises(NanofindInputError, match="cannot be zero"):
        direction_vector(np.eye(3), [0, 0, 0])
