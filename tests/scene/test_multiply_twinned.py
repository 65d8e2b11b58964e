import numpy as np
import pytest
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.scene.labels import DefectFlag
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.multiply_twinned import (
    TWIN_ANGLE_DEG,
    DecahedronGenerator,
    IcosahedronGenerator,
    fcc_metal_parameters,
)
from nanofind.scene.orientation import rotation_about_axis
from nanofind.scene.volumes import Sphere

D_AU = 4.078 / np.sqrt(2)


def _dh(n, gap="strain"):
    gen = DecahedronGenerator("Au", D_AU, gap, (n % 2) * D_AU / 2)
    return gen, gen.generate(gen.bipyramid(n))


@pytest.mark.parametrize("n,count", [(1, 7), (2, 23), (3, 54), (4, 105), (5, 181)])
def test_complete_decahedra_have_magic_numbers(n, count):
    _, atoms = _dh(n)
    assert len(atoms.numbers) == count


@pytest.mark.parametrize("n,count", [(1, 13), (2, 55), (3, 147), (4, 309)])
def test_complete_icosahedra_have_magic_numbers(n, count):
    gen = IcosahedronGenerator("Au", D_AU)
    assert len(gen.generate(gen.mackay(n)).numbers) == count


def test_decahedron_has_a_five_fold_axis_and_five_grains():
    _, atoms = _dh(8)
    assert set(atoms.grain.tolist()) == {0, 1, 2, 3, 4}
    turned = atoms.positions @ rotation_about_axis([0, 0, 1], 72.0).T
    assert cKDTree(atoms.positions).query(turned)[0].max() < 1e-6
    # not a symmetry of a single crystal: a 36° turn does not map the particle onto itself
    half = atoms.positions @ rotation_about_axis([0, 0, 1], 36.0).T
    assert cKDTree(atoms.positions).query(half)[0].max() > 0.5
    sizes = np.bincount(atoms.grain)
    assert sizes.max() - sizes.min() <= sizes.max() * 0.5  # grain 0 also holds the axis column


def test_decahedron_segments_are_near_fcc():
    _, atoms = _dh(10)
    for g in range(5):
        p = atoms.positions[atoms.grain == g]
        d = cKDTree(p).query(p, k=2)[0][:, 1]
        assert d.min() > 0.97 * D_AU and np.median(d) < 1.03 * D_AU


def test_closed_gap_decahedron_segments_are_exact_twins():
    gen = DecahedronGenerator("Au", D_AU, gap="closed")
    atoms = gen.generate(Sphere([0, 0, 0], 18.0))
    assert set(atoms.grain.tolist()) == {0, 1, 2, 3, 4}
    seg0 = atoms.positions[atoms.grain == 0]
    d = cKDTree(seg0).query(seg0, k=2)[0][:, 1]
    assert np.allclose(d, D_AU)  # rigid, unstrained fcc
    # segment 1 is the mirror image of segment 0 across their shared {111} boundary plane
    phi = np.radians(TWIN_ANGLE_DEG)
    normal = np.array([-np.sin(phi), np.cos(phi), 0.0])
    seg1 = atoms.positions[atoms.grain == 1]
    mirrored = seg1 - 2 * np.outer(seg1 @ normal, normal)
    # seg0 and the mirrored seg1 together must be one perfect fcc crystal: 12 neighbours at d,
    # 6 at sqrt(2) d, and none at sqrt(8/3) d (which an hcp-like stacking error would give)
    union = np.unique(np.round(np.vstack([seg0, mirrored]), 6), axis=0)
    assert cKDTree(union).query(union, k=2)[0][:, 1].min() == pytest.approx(D_AU)
    tree = cKDTree(union)
    inner = union[np.linalg.norm(union, axis=1) < 9.0]
    shell = lambda r: tree.query_ball_point(inner, r * D_AU + 0.05, return_length=True) - tree.query_ball_point(  # noqa: E731
        inner, r * D_AU - 0.05, return_length=True)
    assert np.all(shell(1.0) <= 12) and np.any(shell(1.0) == 12)
    full = shell(1.0) == 12
    assert np.all(shell(np.sqrt(8 / 3))[full] == 0)
    assert cKDTree(atoms.positions).query(atoms.positions, k=2)[0][:, 1].min() >= 0.8 * D_AU


def test_icosahedron_grains_and_strain():
    gen = IcosahedronGenerator("Au", D_AU)
    atoms = gen.generate(gen.mackay(6))
    assert len(set(atoms.grain.tolist())) == 20
    d = cKDTree(atoms.positions).query(atoms.positions, k=2)[0][:, 1]
    assert 0.93 * D_AU < d.min() and d.max() < 1.07 * D_AU
    # volume per atom is the bulk value
    radial = gen.radial_spacing_A()
    assert radial == pytest.approx(D_AU * 0.97, rel=0.02)
    assert np.any(atoms.defect & DefectFlag.TWIN_BOUNDARY)


def test_mtp_needs_an_fcc_metal():
    with pytest.raises(NanofindInputError, match="fcc metal"):
        fcc_metal_parameters(load_unit_cell("CeO2"))
    assert fcc_metal_parameters(load_unit_cell("Pt"))[0] == "Pt"


def test_decahedron_two_fold_view_is_two_fold():
    from nanofind.scene.build import particle_object

    obj = particle_object({"material": "Au", "shape": "decahedron", "diameter_A": 40.0, "zone_axis": "2fold"}, 0)
    pos = obj.local_atoms().positions
    turned = pos * [-1, -1, 1]  # 180° about the beam
    assert cKDTree(pos).query(turned)[0].max() < 1e-6
    # the five-fold axis lies in the image plane
    assert np.ptp(pos[:, 2]) > 0.8 * np.ptp(pos[:, 0])
