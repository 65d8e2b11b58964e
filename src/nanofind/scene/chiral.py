"""Chiral prisms: plates along the beam whose projected outline has a handedness.

The cross-section of a :class:`ChiralPrism` is a rounded regular polygon (a triangle by default)
with one off-centre notch on every side, cut next to the corner that follows the side
counter-clockwise. That corner is left as a hook, so the outline looks like a pinwheel whose
hooks point counter-clockwise (``hand="right"``). The left-handed outline is the exact mirror
image, ``x -> -x`` in the prism's own frame. ``facet_strength`` scales the notch depth; at 0 the
outline is the plain rounded polygon, which is mirror-symmetric (achiral).

Polar description, in the prism's frame (angles counter-clockwise from +x, corners of the
right-handed outline at ``90° + j·360°/n``): the outline radius is ``r(θ) = min(a / cos ψ,
R)·(1 − d(ψ))``, with ``R = size_A / 2`` the corner radius, ``a`` the apothem, ``ψ`` the angle from
the nearest side's normal and ``d`` the notch depth profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.scene.volumes import SURFACE_TOLERANCE_A, Volume, _rot

#: Apothem of the rounded polygon relative to that of the sharp polygon with corner radius ``R``;
#: above 1 the corners are cut by the circle of radius ``R`` (rounded).
CORNER_ROUNDING = 1.25
#: Notch of a side, as fractions of the half-side angle π/n, measured from the side's normal
#: towards the counter-clockwise corner: it spans ``[NOTCH_START, NOTCH_END]``.
NOTCH_START, NOTCH_END = 0.2, 0.68
#: Notch depth at ``facet_strength = 1``, as a fraction of the local outline radius.
MAX_NOTCH_DEPTH = 0.42

HANDS = ("right", "left")


def _check_hand(hand: str) -> str:
    if hand not in HANDS:
        raise NanofindInputError(f"hand must be 'right' or 'left', got {hand!r}", "hand")
    return hand


@dataclass(frozen=True, eq=False)
class ChiralPrism(Volume):
    """Prism along the beam with a chiral (pinwheel-like) cross-section.

    Parameters
    ----------
    size_A : float
        Outer diameter of the outline (twice the corner radius), Å; the outline lies inside the
        circle of radius ``size_A / 2`` about the prism axis.
    thickness_A : float
        Length of the prism along its axis (the beam for an untilted prism), Å.
    hand : {"right", "left"}
        Handedness; "left" is the "right" outline mirrored ``x -> -x`` in the prism frame.
    facet_strength : float
        Depth of the chiral notches in [0, 1]; 0 gives the achiral rounded polygon.
    n_sides : int
        Sides of the polygon (3 to 8).
    center_A : ndarray of shape (3,)
        Centre of the prism, Å.
    rotation : ndarray of shape (3, 3)
        Orientation: prism-frame vectors ``x`` appear at ``rotation @ x``; the prism axis is the
        frame's z.
    """

    size_A: float
    thickness_A: float
    hand: Literal["right", "left"] = "right"
    facet_strength: float = 1.0
    n_sides: int = 3
    center_A: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        if not (self.size_A > 0 and self.thickness_A > 0):
            raise NanofindInputError(f"size_A and thickness_A must be > 0 Å, got {self.size_A}, "
                                     f"{self.thickness_A}", "size_A")
        _check_hand(self.hand)
        if not 0 <= self.facet_strength <= 1:
            raise NanofindInputError(f"facet_strength must be in [0, 1], got {self.facet_strength}",
                                     "facet_strength")
        if int(self.n_sides) != self.n_sides or not 3 <= self.n_sides <= 8:
            raise NanofindInputError(f"n_sides must be an integer from 3 to 8, got {self.n_sides}", "n_sides")
        object.__setattr__(self, "center_A", np.asarray(self.center_A, dtype=float).reshape(3))
        object.__setattr__(self, "rotation", _rot(self.rotation))

    @property
    def corner_radius_A(self) -> float:
        """Largest distance of the outline from the axis, Å (``size_A / 2``)."""
        return self.size_A / 2

    def outline_radius_A(self, theta_rad: np.ndarray) -> np.ndarray:
        """Outline radius r(θ), Å, at polar angles ``theta_rad`` (rad, counter-clockwise from +x, prism frame)."""
        theta = np.asarray(theta_rad, dtype=float)
        return self._right_radius_A(np.pi - theta if self.hand == "left" else theta)  # left: x -> -x

    def _right_radius_A(self, theta: np.ndarray) -> np.ndarray:
        """r(θ) of the right-handed outline."""
        half = np.pi / self.n_sides
        radius = self.corner_radius_A
        apothem = radius * np.cos(half) * CORNER_ROUNDING
        # angle from the normal of the nearest side; corners sit at ψ = ±π/n
        psi = np.mod(theta - np.pi / 2, 2 * half) - half
        r = np.minimum(apothem / np.cos(psi), radius)
        notch = (psi >= NOTCH_START * half) & (psi <= NOTCH_END * half)
        return np.where(notch, r * (1 - MAX_NOTCH_DEPTH * self.facet_strength), r)

    def contains_xy(self, xy: np.ndarray) -> np.ndarray:
        """Whether points (N, 2), Å, in the prism frame lie inside the outline.

        The left-handed test mirrors the points (``x -> -x``) and applies the right-handed one, so
        ``left.contains_xy(p) == right.contains_xy(p * [-1, 1])`` holds exactly.
        """
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        x = -xy[:, 0] if self.hand == "left" else xy[:, 0]
        rho = np.hypot(x, xy[:, 1])
        return rho <= self._right_radius_A(np.arctan2(xy[:, 1], x)) + SURFACE_TOLERANCE_A

    def outline_xy(self, n_points: int = 720) -> np.ndarray:
        """Points (n_points, 2), Å, along the outline in the prism frame (counter-clockwise)."""
        theta = np.linspace(0, 2 * np.pi, int(n_points), endpoint=False)
        r = self.outline_radius_A(theta)
        return np.column_stack([r * np.cos(theta), r * np.sin(theta)])

    def contains(self, points):
        local = (np.asarray(points, dtype=float).reshape(-1, 3) - self.center_A) @ self.rotation
        inside = np.abs(local[:, 2]) <= self.thickness_A / 2 + SURFACE_TOLERANCE_A
        inside[inside] = self.contains_xy(local[inside, :2])
        return inside

    def bounding_box(self):
        r, h = self.corner_radius_A, self.thickness_A / 2
        corners = np.array([[x, y, z] for x in (-r, r) for y in (-r, r) for z in (-h, h)]) @ self.rotation.T
        return self.center_A + corners.min(axis=0), self.center_A + corners.max(axis=0)

    def transformed(self, rotation=None, translation=(0, 0, 0)):
        r = _rot(rotation)
        return ChiralPrism(self.size_A, self.thickness_A, self.hand, self.facet_strength, self.n_sides,
                           r @ self.center_A + np.asarray(translation, float), r @ self.rotation)

    def mirrored(self) -> ChiralPrism:
        """The prism of the other hand, in the same place and orientation."""
        other = "left" if self.hand == "right" else "right"
        return ChiralPrism(self.size_A, self.thickness_A, other, self.facet_strength, self.n_sides,
                           self.center_A, self.rotation)


def outline_mask(prism: ChiralPrism, shape: tuple[int, int], pixel_size_A: float,
                 center_px: Sequence[float] | None = None) -> np.ndarray:
    """Boolean (rows, cols) image of the prism's outline in its own frame, rows along y.

    Pixel ``[row, col]`` has its centre at ``((col + 0.5 - cx) · p, (row + 0.5 - cy) · p)`` Å from the
    prism axis, with ``(cx, cy) = center_px`` (default: the image centre) and ``p = pixel_size_A``.
    """
    ny, nx = shape
    cx, cy = (nx / 2, ny / 2) if center_px is None else center_px
    rows, cols = np.mgrid[0:ny, 0:nx]
    xy = np.column_stack([((cols + 0.5 - cx) * pixel_size_A).ravel(), ((rows + 0.5 - cy) * pixel_size_A).ravel()])
    return prism.contains_xy(xy).reshape(ny, nx)
