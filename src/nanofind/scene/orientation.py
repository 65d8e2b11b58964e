"""Rotations: zone axes along the beam, in-plane angles and specimen tilts.

Rotation matrices act on column vectors; positions (N, 3) are rotated as ``positions @ R.T``.
The beam travels along -z through the scene, and the zone axis [uvw] is mapped to +z.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nanofind.scene.lattice import direction_vector


def rotation_about_axis(axis: Sequence[float], angle_deg: float) -> np.ndarray:
    """Right-handed rotation by ``angle_deg`` degrees about ``axis`` (Rodrigues' formula)."""
    axis = np.asarray(axis, dtype=float)
    norm = np.linalg.norm(axis)
    if norm == 0:
        raise ValueError("rotation axis must be non-zero")
    k = axis / norm
    t = np.deg2rad(angle_deg)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * (kx @ kx)


def rotation_to_z(vector: Sequence[float]) -> np.ndarray:
    """Smallest rotation that maps ``vector`` onto +z.

    A vector along -z is turned by 180° about x, so the result is always defined.
    """
    v = np.asarray(vector, dtype=float)
    v = v / np.linalg.norm(v)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(v, z)
    s = np.linalg.norm(axis)
    c = float(np.dot(v, z))
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    return rotation_about_axis(axis, np.degrees(np.arctan2(s, c)))


def zone_axis_rotation(cell: np.ndarray, zone_axis: Sequence[float], in_plane_deg: float = 0.0) -> np.ndarray:
    """Rotation that puts the crystal direction ``zone_axis`` of ``cell`` along the beam (z).

    Parameters
    ----------
    cell : ndarray of shape (3, 3)
        Lattice vectors as rows, Å.
    zone_axis : sequence of 3 or 4 numbers
        ``[uvw]``, or Miller–Bravais ``[UVTW]`` for hexagonal cells.
    in_plane_deg : float
        Rotation about the beam applied afterwards, degrees, counter-clockwise seen from +z.

    Returns
    -------
    ndarray of shape (3, 3)
    """
    direction = direction_vector(cell, zone_axis)
    return rotation_about_axis([0, 0, 1], in_plane_deg) @ rotation_to_z(direction)


def tilt_rotation(tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    """Specimen tilt: rotation by ``tilt_deg`` about the in-plane axis at ``azimuth_deg`` from x."""
    a = np.deg2rad(azimuth_deg)
    return rotation_about_axis([np.cos(a), np.sin(a), 0.0], tilt_deg)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Rotation drawn uniformly from SO(3) (random unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
