import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.scene.amorphous import AVOGADRO, AmorphousGenerator
from nanofind.scene.neighbours import min_distances_by_pair


def _density(n_by_mass, volume_A3):
    return n_by_mass / AVOGADRO / (volume_A3 * 1e-24)


def test_carbon_density_exact_and_min_distance_guaranteed_across_periodic_edges():
    gen = AmorphousGenerator(density_g_cm3=2.0, min_distance_A=1.3, lateral_period_A=(40, 40))
    pos, numbers = gen.generate_box([0, 0, 0], [40, 40, 20], rng=1)
    assert set(numbers.tolist()) == {6}
    expected = 2.0 * 40 * 40 * 20 * 1e-24 * AVOGADRO / 12.011
    assert abs(len(pos) - expected) <= 0.5
    assert _density(len(pos) * 12.011, 40 * 40 * 20) == pytest.approx(2.0, rel=1e-3)
    dmin = min_distances_by_pair(pos, ["C"] * len(pos), lateral_period_A=(40, 40))["C-C"]
    assert dmin >= 1.3
    assert np.all((pos >= 0) & (pos < [40, 40, 20]))


def test_is_amorphous_not_a_lattice():
    gen = AmorphousGenerator(lateral_period_A=(30, 30))
    pos, _ = gen.generate_box([0, 0, 0], [30, 30, 30], rng=2)
    # no preferred spacing: the z coordinates are spread uniformly
    hist, _ = np.histogram(pos[:, 2], bins=10, range=(0, 30))
    assert hist.min() > 0.7 * hist.mean()


def test_multi_element_pairs_and_exact_composition():
    gen = AmorphousGenerator({"Si": 1, "O": 2}, density_g_cm3=2.2,
                             min_distance_A={"Si-O": 1.55, "O-O": 2.3, "Si-Si": 2.9}, lateral_period_A=(30, 30))
    pos, numbers = gen.generate_box([0, 0, 0], [30, 30, 20], rng=3)
    n_si, n_o = int(np.sum(numbers == 14)), int(np.sum(numbers == 8))
    assert n_o == 2 * n_si or abs(n_o - 2 * n_si) <= 2
    mass = n_si * 28.085 + n_o * 15.999
    assert _density(mass, 30 * 30 * 20) == pytest.approx(2.2, rel=2e-3)
    symbols = np.where(numbers == 14, "Si", "O")
    d = min_distances_by_pair(pos, symbols, lateral_period_A=(30, 30))
    assert d["O-Si"] >= 1.55 and d["O-O"] >= 2.3 and d["Si-Si"] >= 2.9


def test_same_seed_same_atoms_other_seed_other_atoms():
    gen = AmorphousGenerator(lateral_period_A=(20, 20))
    a, _ = gen.generate_box([0, 0, 0], [20, 20, 10], rng=5)
    b, _ = gen.generate_box([0, 0, 0], [20, 20, 10], rng=5)
    c, _ = gen.generate_box([0, 0, 0], [20, 20, 10], rng=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_unpackable_density_and_missing_pairs_are_refused():
    with pytest.raises(NanofindInputError, match="density_g_cm3: density 5.0 g/cm³ cannot be packed"):
        AmorphousGenerator(density_g_cm3=5.0, min_distance_A=1.6).generate_box([0, 0, 0], [10, 10, 10])
    with pytest.raises(NanofindInputError, match="no minimum distance given for pair O-Si"):
        AmorphousGenerator({"Si": 1, "O": 2}, min_distance_A={"Si-Si": 3.0, "O-O": 2.3})
    with pytest.raises(NanofindInputError, match="unknown element"):
        AmorphousGenerator({"Xx": 1})
