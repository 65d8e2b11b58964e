import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.scene.crystal import CrystalGenerator
from nanofind.scene.labels import DefectFlag
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.point_defects import add_vacancies, substitute
from nanofind.scene.volumes import Sphere


def _ball(material="Au", radius=15.0):
    return CrystalGenerator(load_unit_cell(material)).generate(Sphere([0, 0, 0], radius))


def test_vacancies_remove_exact_fraction_and_flag_neighbours():
    atoms = _ball()
    out = add_vacancies(atoms, 0.05, np.random.default_rng(0))
    assert len(out.numbers) == len(atoms.numbers) - round(0.05 * len(atoms.numbers))
    flagged = (out.defect & DefectFlag.VACANCY_NEIGHBOUR) > 0
    assert flagged.sum() > 0
    # every flagged atom had a removed nearest neighbour: its coordination dropped below 12
    from scipy.spatial import cKDTree

    coord = cKDTree(out.positions).query_ball_point(out.positions, 3.0, return_length=True) - 1
    inner = np.linalg.norm(out.positions, axis=1) < 10
    assert np.all(coord[inner & ~flagged] == 12)
    assert np.all(coord[inner & flagged] < 12)


def test_substitution_exact_fraction_on_host_sublattice():
    atoms = _ball("CeO2", 15.0)
    n_ce = int(np.sum(atoms.numbers == 58))
    out = substitute(atoms, "Zr", 0.25, np.random.default_rng(1), host="Ce")
    assert int(np.sum(out.numbers == 40)) == round(0.25 * n_ce)
    assert int(np.sum(out.numbers == 8)) == int(np.sum(atoms.numbers == 8))  # oxygen untouched
    assert np.all(out.defect[out.numbers == 40] & DefectFlag.SUBSTITUTION)
    assert np.array_equal(out.positions, atoms.positions)


def test_bad_fractions_and_elements():
    atoms = _ball()
    with pytest.raises(NanofindInputError, match="vacancy_fraction"):
        add_vacancies(atoms, 1.5, np.random.default_rng(0))
    with pytest.raises(NanofindInputError, match="unknown element"):
        substitute(atoms, "Qq", 0.1, np.random.default_rng(0))
