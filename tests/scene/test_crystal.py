import numpy as np
import pytest
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.scene.crystal import CrystalGenerator, PlanarDefect, lattice_sites_in_box
from nanofind.scene.labels import DefectFlag
from nanofind.scene.lattice import load_unit_cell, nearest_neighbour_distance, plane_normal, plane_spacing
from nanofind.scene.orientation import zone_axis_rotation
from nanofind.scene.volumes import Cylinder, Sphere

AU = load_unit_cell("Au")
A_AU = 4.078


def _layers(atoms, normal, spacing):
    """Atoms grouped into close-packed layers along ``normal``: {layer index: positions}."""
    h = atoms.positions @ normal
    idx = np.round(h / spacing).astype(int)
    return {int(k): atoms.positions[idx == k] for k in np.unique(idx)}


def _same_sites(upper, lower, normal, tol=0.2):
    """Whether the atom of ``upper`` nearest the axis sits over a site of ``lower`` (projected)."""
    def flat(p):
        return p - np.outer(p @ normal, normal)
    probe = flat(upper)[np.argmin(np.linalg.norm(flat(upper), axis=1))]
    return cKDTree(flat(lower)).query(probe)[0] < tol


def _stacking(atoms, normal, spacing):
    """Jagodzinski symbols of the inner layers: 'h' if both neighbours are alike, else 'c'."""
    layers = _layers(atoms, normal, spacing)
    keys = sorted(layers)[2:-2]
    for k in sorted(layers)[1:-1]:
        assert not _same_sites(layers[k + 1], layers[k], normal), "two consecutive layers on the same sites"
    return "".join("h" if _same_sites(layers[k + 1], layers[k - 1], normal) else "c" for k in keys)


def _column(radius=12.0, length=40.0):
    n = plane_normal(AU.cell, [1, 1, 1])
    return Cylinder([0, 0, 0], n, radius, length), n, plane_spacing(AU.cell, [1, 1, 1])


def test_perfect_sphere_count_and_distances():
    atoms = CrystalGenerator(AU, zone_axis_rotation(AU.cell, [1, 1, 0])).generate(Sphere([0, 0, 0], 25.0))
    ideal = 4 / 3 * np.pi * 25.0**3 / (A_AU**3 / 4)
    assert abs(len(atoms.numbers) - ideal) / ideal < 0.03
    d = cKDTree(atoms.positions).query(atoms.positions, k=2)[0][:, 1]
    assert np.allclose(d, A_AU / np.sqrt(2))
    assert set(atoms.grain.tolist()) == {0} and not atoms.defect.any()


def test_zone_axis_110_gives_columns_along_beam():
    atoms = CrystalGenerator(AU, zone_axis_rotation(AU.cell, [1, 1, 0])).generate(Sphere([0, 0, 0], 15.0))
    xy = np.round(atoms.positions[:, :2], 4)
    columns = np.unique(xy, axis=0)
    # along [110] the atoms stack in columns a/sqrt(2) apart: far fewer columns than atoms
    assert len(columns) < len(xy) / 5
    tree = cKDTree(columns)
    # projected fcc [110] columns form a centred a x a/sqrt(2) net: nearest columns a*sqrt(6)/4 apart
    assert tree.query(columns, k=2)[0][:, 1].min() == pytest.approx(A_AU * np.sqrt(6) / 4, rel=1e-3)


def test_perfect_fcc_stacking_is_all_cubic():
    vol, n, d = _column()
    assert set(_stacking(CrystalGenerator(AU).generate(vol), n, d)) == {"c"}


def test_twin_is_a_mirror_across_the_plane():
    vol, n, d = _column()
    gen = CrystalGenerator(AU, defects=(PlanarDefect("twin", (1, 1, 1), 0.7),))
    atoms = gen.generate(vol)
    (h0,) = gen.defect_plane_heights_A()
    assert h0 == pytest.approx(0.0, abs=1e-9)  # snapped onto the nearest atomic layer
    assert gen.domain_count == 2 and set(atoms.grain.tolist()) == {0, 1}
    twin = atoms.positions[atoms.grain == 1]
    assert np.all(twin @ n > h0)
    mirrored = twin - 2 * np.outer(twin @ n - h0, n)
    sites, _ = lattice_sites_in_box(AU, mirrored.min(axis=0) - 1, mirrored.max(axis=0) + 1)
    assert cKDTree(sites).query(mirrored)[0].max() < 1e-6
    # the twinned grain itself is not a translate of the parent lattice
    assert cKDTree(sites).query(twin)[0].max() > 0.5
    stacking = _stacking(atoms, n, d)
    assert stacking.count("h") == 1
    assert np.all(atoms.defect[np.abs(atoms.positions @ n - h0) < 0.1] & DefectFlag.TWIN_BOUNDARY)


def test_intrinsic_and_extrinsic_faults_have_the_textbook_stacking():
    vol, n, d = _column()
    intrinsic = CrystalGenerator(AU, defects=(PlanarDefect("intrinsic", (1, 1, 1), 0.0),)).generate(vol)
    extrinsic = CrystalGenerator(AU, defects=(PlanarDefect("extrinsic", (1, 1, 1), 0.0),)).generate(vol)
    s_int = _stacking(intrinsic, n, d).strip("c")
    s_ext = _stacking(extrinsic, n, d).strip("c")
    assert s_int == "hh"  # ABC|BCA: two adjacent hcp-like layers
    assert s_ext == "hch"  # ABCA C BCA: two hcp-like layers one apart
    for atoms in (intrinsic, extrinsic):
        assert set(atoms.grain.tolist()) == {0}  # a fault is not a new grain
        dist = cKDTree(atoms.positions).query(atoms.positions, k=13)[0][:, 1:]
        assert dist[:, 0].min() == pytest.approx(A_AU / np.sqrt(2))
        assert np.any(atoms.defect & DefectFlag.STACKING_FAULT)


def test_lamellae_make_one_grain_per_domain():
    vol, n, d = _column(length=60)
    gen = CrystalGenerator(AU, defects=tuple(PlanarDefect("twin", (1, 1, 1), x) for x in (-12, 0, 9.5)))
    atoms = gen.generate(vol)
    assert gen.domain_count == 4
    assert set(atoms.grain.tolist()) == {0, 1, 2, 3}
    assert _stacking(atoms, n, d).count("h") == 3
    heights = gen.defect_plane_heights_A()
    assert np.allclose(np.array(heights) / d, np.round(np.array(heights) / d))


def _coordination(atoms, cutoff):
    tree = cKDTree(atoms.positions)
    inner = np.linalg.norm(atoms.positions, axis=1) < 8.0
    return tree.query_ball_point(atoms.positions[inner], cutoff, return_length=True)


@pytest.mark.parametrize("material,plane", [("CdSe-zb", (1, 1, 1)), ("CdSe", (0, 0, 0, 1))])
@pytest.mark.parametrize("kind", ["intrinsic", "twin"])
def test_polar_semiconductor_faults_keep_tetrahedral_bonding(material, plane, kind):
    cell = load_unit_cell(material)
    bond = nearest_neighbour_distance(cell)
    gen = CrystalGenerator(cell, defects=(PlanarDefect(kind, plane, 0.3),))
    atoms = gen.generate(Sphere([0, 0, 0], 14.0))
    assert np.all(_coordination(atoms, 1.1 * bond) == 5)  # the atom itself plus 4 neighbours
    dist = cKDTree(atoms.positions).query(atoms.positions, k=2)[0][:, 1]
    assert dist.min() == pytest.approx(bond, rel=1e-6)
    # the defect really changes the crystal: part of it leaves the perfect lattice
    sites, _ = lattice_sites_in_box(cell, atoms.positions.min(axis=0) - 1, atoms.positions.max(axis=0) + 1)
    assert (cKDTree(sites).query(atoms.positions)[0] > 0.5).sum() > len(atoms.numbers) / 5
    if kind == "twin":
        assert gen.domain_count == 2


def test_wurtzite_fault_introduces_cubic_layers():
    cell = load_unit_cell("CdSe")
    n = plane_normal(cell.cell, [0, 0, 0, 1])
    vol = Cylinder([0, 0, 0], n, 12.0, 60.0)
    cd = lambda atoms: atoms.select(atoms.numbers == 48)  # noqa: E731
    perfect = cd(CrystalGenerator(cell).generate(vol))
    faulted = cd(CrystalGenerator(cell, defects=(PlanarDefect("intrinsic", (0, 0, 0, 1), 0.0),)).generate(vol))
    half_c = cell.cell.lengths()[2] / 2
    assert set(_stacking(perfect, n, half_c)) == {"h"}
    assert 1 <= _stacking(faulted, n, half_c).count("c") <= 2


def test_non_parallel_defects_are_refused():
    with pytest.raises(NanofindInputError, match="parallel"):
        CrystalGenerator(AU, defects=(PlanarDefect("twin", (1, 1, 1), 0), PlanarDefect("twin", (1, -1, 1), 5)))
    with pytest.raises(NanofindInputError, match="closer than one layer"):
        CrystalGenerator(AU, defects=(PlanarDefect("twin", (1, 1, 1), 0), PlanarDefect("twin", (1, 1, 1), 0.2)))


def test_twin_through_a_chosen_point():
    point = np.array([4.078, 0.0, 0.0])  # a lattice site: the plane (111) through it lies at a/sqrt(3)
    defect = PlanarDefect.through("twin", (1, 1, 1), point, AU)
    assert defect.position_A == pytest.approx(4.078 / np.sqrt(3))
    gen = CrystalGenerator(AU, defects=(defect,))
    assert gen.defect_plane_heights_A()[0] == pytest.approx(defect.position_A)


def test_diamond_fault_shifts_between_bilayers():
    si = load_unit_cell("Si")
    bond = nearest_neighbour_distance(si)
    gen = CrystalGenerator(si, defects=(PlanarDefect("intrinsic", (1, 1, 1), 0.0),))
    atoms = gen.generate(Sphere([0, 0, 0], 14.0))
    assert np.all(_coordination(atoms, 1.1 * bond) == 5)
    sites, _ = lattice_sites_in_box(si, atoms.positions.min(axis=0) - 1, atoms.positions.max(axis=0) + 1)
    assert (cKDTree(sites).query(atoms.positions)[0] > 0.5).sum() > len(atoms.numbers) / 5


@pytest.mark.parametrize("material,plane,kind", [("Au", (1, 1, 0), "twin"), ("Au", (1, 0, 0), "intrinsic"),
                                                 ("CeO2", (1, 1, 1), "twin")])
def test_defects_that_are_symmetries_or_break_bonds_are_refused(material, plane, kind):
    # a 180° turn about <110> or <100> is a symmetry of fcc (no defect at all); rigid {111} twins of
    # fluorite leave cations under-coordinated
    with pytest.raises(NanofindInputError, match="keeping every atom's coordination"):
        CrystalGenerator(load_unit_cell(material), defects=(PlanarDefect(kind, plane, 0.0),))
