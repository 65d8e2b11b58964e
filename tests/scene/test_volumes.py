import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.orientation import rotation_about_axis
from nanofind.scene.volumes import (
    ConvexPolyhedron,
    Cylinder,
    Sphere,
    equivalent_diameter_A,
    faceted_polyhedron,
    wulff_polyhedron,
)


def _mc_volume(volume, lo, hi, n=200_000, seed=0):
    pts = np.random.default_rng(seed).uniform(lo, hi, size=(n, 3))
    return volume.contains(pts).mean() * np.prod(np.subtract(hi, lo))


def test_sphere_cylinder_box_contain_what_geometry_says():
    s = Sphere([1, 2, 3], 5)
    assert s.contains(np.array([[1, 2, 8], [1, 2, 8.01]])).tolist() == [True, False]
    c = Cylinder([0, 0, 0], [0, 0, 1], radius_A=2, length_A=10)
    assert c.contains(np.array([[1.9, 0, 4.9], [2.1, 0, 0], [0, 0, 5.1]])).tolist() == [True, False, False]
    b = ConvexPolyhedron.box([0, 0, 0], [10, 20, 30])
    assert b.volume_A3() == pytest.approx(6000)
    assert _mc_volume(c, [-3, -3, -6], [3, 3, 6]) == pytest.approx(np.pi * 4 * 10, rel=0.03)


def test_boolean_volumes():
    a = Sphere([0, 0, 0], 10)
    b = Sphere([10, 0, 0], 10)
    pts = np.array([[5, 0, 0], [-5, 0, 0], [15, 0, 0], [30, 0, 0]])
    assert (a & b).contains(pts).tolist() == [True, False, False, False]
    assert (a | b).contains(pts).tolist() == [True, True, True, False]
    assert (a - b).contains(pts).tolist() == [False, True, False, False]
    # lens volume of two spheres of radius r at distance d: pi (4r + d)(2r - d)^2 / 12
    lens = np.pi * (40 + 10) * (20 - 10) ** 2 / 12
    assert _mc_volume(a & b, [-10, -10, -10], [20, 10, 10]) == pytest.approx(lens, rel=0.03)


def test_octahedron_and_cube_from_miller_families():
    cell = load_unit_cell("Au").cell
    octa = faceted_polyhedron(cell, {(1, 1, 1): 10.0})
    assert len(octa.normals) == 8
    assert octa.volume_A3() == pytest.approx(4 * np.sqrt(3) * 10**3)  # inradius-10 octahedron
    cube = faceted_polyhedron(cell, {(1, 0, 0): 10.0})
    assert cube.volume_A3() == pytest.approx(20**3)


def test_hexagonal_prism_from_miller_bravais_facets():
    cell = load_unit_cell("CdSe").cell
    prism = faceted_polyhedron(cell, {(1, 0, -1, 0): 10.0, (0, 0, 0, 1): 15.0})
    assert len(prism.normals) == 8
    hexagon_area = 2 * np.sqrt(3) * 10**2  # regular hexagon with inradius 10
    assert prism.volume_A3() == pytest.approx(hexagon_area * 30)


def test_facets_turn_with_the_crystal():
    cell = load_unit_cell("Au").cell
    rot = rotation_about_axis([0, 0, 1], 45)
    cube = faceted_polyhedron(cell, {(1, 0, 0): 10.0}, rotation=rot)
    # the corner direction of the turned cube is now along x
    assert cube.contains(np.array([[14.0, 0, 0]]))[0] and not cube.contains(np.array([[10.5, 10.5, 0]]))[0]


def test_wulff_size_and_facet_disappearance():
    cell = load_unit_cell("Au").cell
    w = wulff_polyhedron(cell, {(1, 1, 1): 1.0, (1, 0, 0): 1.15}, 50.0)
    assert equivalent_diameter_A(w.volume_A3()) == pytest.approx(50.0)
    # truncated octahedron: both families are facets
    assert len(w.normals) == 14
    # when gamma100/gamma111 > sqrt(3) the {100} planes lie outside the octahedron
    octa_like = wulff_polyhedron(cell, {(1, 1, 1): 1.0, (1, 0, 0): 1.8}, 50.0)
    verts = octa_like.vertices()
    assert len(np.unique(np.round(verts, 6), axis=0)) == 6


def test_unbounded_facets_are_refused():
    cell = load_unit_cell("CdSe").cell
    with pytest.raises(NanofindInputError, match="bounded"):
        faceted_polyhedron(cell, {(1, 0, -1, 0): 10.0})  # an infinite prism
    with pytest.raises(NanofindInputError, match="must be > 0"):
        Sphere([0, 0, 0], -1)


@pytest.mark.parametrize("volume", [
    Sphere([1.0, 2.0, 3.0], 7.0),
    Cylinder([0, 0, 0], [1, 1, 0], 4.0, 12.0),
    ConvexPolyhedron.box([-3, -4, -5], [6, 5, 4]),
    Sphere([0, 0, 0], 6.0) - Cylinder([0, 0, 0], [0, 0, 1], 2.0, 20.0),
    Sphere([0, 0, 0], 6.0) | ConvexPolyhedron.box([0, 0, 0], [8, 8, 8]),
])
def test_moving_a_volume_moves_its_points(volume):
    rot = rotation_about_axis([1, 2, 3], 50.0)
    shift = np.array([10.0, -5.0, 2.0])
    moved = volume.transformed(rot, shift)
    pts = np.random.default_rng(0).uniform(-12, 12, size=(5000, 3))
    assert np.array_equal(volume.contains(pts), moved.contains(pts @ rot.T + shift))
    lo, hi = moved.bounding_box()
    inside = pts[volume.contains(pts)] @ rot.T + shift
    assert np.all(inside >= lo - 1e-9) and np.all(inside <= hi + 1e-9)
