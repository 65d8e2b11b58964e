import numpy as np
import pytest

from nanofind.scene.lattice import direction_vector, load_unit_cell
from nanofind.scene.orientation import random_rotation, rotation_about_axis, tilt_rotation, zone_axis_rotation


@pytest.mark.parametrize("axis", [[1, 1, 0], [1, 0, 0], [1, 1, 1], [2, 1, 1], [-1, 0, 0], [0, 0, -1], [3, -1, 2]])
def test_cubic_zone_axis_goes_to_beam(axis):
    cell = load_unit_cell("Au").cell
    rot = zone_axis_rotation(cell, axis, in_plane_deg=37.0)
    v = rot @ direction_vector(cell, axis)
    assert np.allclose(v / np.linalg.norm(v), [0, 0, 1])
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1.0)


def test_hexagonal_four_index_zone_axis():
    cell = load_unit_cell("CdSe").cell
    rot = zone_axis_rotation(cell, [2, -1, -1, 0])
    a1 = rot @ np.asarray(cell)[0]
    assert np.allclose(a1 / np.linalg.norm(a1), [0, 0, 1])
    c = rot @ np.asarray(cell)[2]
    assert abs(c[2]) < 1e-9  # the c axis lies in the image plane


def test_in_plane_angle_turns_about_beam():
    cell = load_unit_cell("Au").cell
    r0 = zone_axis_rotation(cell, [0, 0, 1], 0.0)
    r90 = zone_axis_rotation(cell, [0, 0, 1], 90.0)
    x0 = r0 @ [1.0, 0, 0]
    x90 = r90 @ [1.0, 0, 0]
    assert np.allclose(rotation_about_axis([0, 0, 1], 90) @ x0, x90)


def test_tilt_moves_axis_by_tilt_angle():
    t = tilt_rotation(10.0, 30.0)
    z = t @ [0, 0, 1.0]
    assert np.degrees(np.arccos(z[2])) == pytest.approx(10.0)


def test_random_rotation_is_proper():
    rng = np.random.default_rng(0)
    for _ in range(5):
        r = random_rotation(rng)
        assert np.allclose(r @ r.T, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)
