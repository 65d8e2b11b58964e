"""Placing particles: resting on a support, side by side, touching, or cut by the field edge.

All placements keep the inter-object clearance of :func:`nanofind.scene.scene.clearance_matrix`
(by default no metal–carbon distance below 2.0 Å).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.scene.crystal import GeneratedAtoms
from nanofind.scene.neighbours import pairs_within
from nanofind.scene.scene import SceneObject, clearance_matrix, inside_field

#: Extra height above exact contact, Å.
CONTACT_MARGIN_A = 1e-6


class PlacementError(NanofindInputError):
    """The requested particles do not fit in the field."""


def rest_shift_A(moving: GeneratedAtoms, support: GeneratedAtoms, *, clearance_A: Mapping[str, float] | None = None,
                 lateral_period_A: Sequence[float] | None = None) -> float:
    """Vertical shift (Å) that sets ``moving`` down on ``support`` at exactly the clearance.

    For every pair of a moving atom and a support atom closer laterally than their clearance
    ``d``, the moving atom must sit at least ``sqrt(d² - ρ²)`` above the support atom (ρ is
    the lateral distance). The smallest shift meeting all of them is the resting position:
    the particle touches the highest support atom beneath it at exactly ``d``. With nothing
    beneath it, it rests on the top of the support's bounding box at the clearance; with an
    empty support, its lowest atom is put at z = 1 Å.
    """
    if len(support.numbers) == 0:
        return float(1.0 - moving.positions[:, 2].min())
    cmat = clearance_matrix(np.concatenate([moving.numbers, support.numbers]), clearance_A)
    flat_m = moving.positions * [1, 1, 0]
    flat_s = support.positions * [1, 1, 0]
    i, j, rho = pairs_within(flat_m, float(cmat.max()), others=flat_s, lateral_period_A=lateral_period_A)
    d = cmat[moving.numbers[i], support.numbers[j]]
    close = rho < d
    if not np.any(close):
        top = support.positions[:, 2].max() if len(support.numbers) else 0.0
        return float(top + cmat.max() - moving.positions[:, 2].min())
    i, j, rho, d = i[close], j[close], rho[close], d[close]
    need = support.positions[j, 2] + np.sqrt(d**2 - rho**2) - moving.positions[i, 2]
    # a hair above exact contact, so rounding never brings the pair below the clearance
    return float(need.max()) + CONTACT_MARGIN_A


def rest_on(obj: SceneObject, support: GeneratedAtoms, xy_A: Sequence[float], *,
            clearance_A: Mapping[str, float] | None = None,
            lateral_period_A: Sequence[float] | None = None) -> SceneObject:
    """Move ``obj`` laterally so its local origin is at ``xy_A`` and set it down on ``support``.

    With ``lateral_period_A`` (the field of view) only the atoms inside the field, which the
    scene keeps, take part, so a particle cut by the field edge rests on what remains of it.
    """
    moved = obj.translated(np.array([xy_A[0], xy_A[1], 0.0]) - obj.offset_A * [1, 1, 0])
    atoms = moved.atoms()
    if lateral_period_A is not None:
        inside = inside_field(atoms.positions, lateral_period_A)
        if not inside.any():
            raise PlacementError(f"a particle at ({xy_A[0]:.1f}, {xy_A[1]:.1f}) Å lies entirely outside the field",
                                 "position_A")
        atoms = atoms.select(inside)
    dz = rest_shift_A(atoms, support, clearance_A=clearance_A, lateral_period_A=lateral_period_A)
    return moved.translated([0.0, 0.0, dz])


def min_distance_A(a: GeneratedAtoms, b: GeneratedAtoms, cutoff: float = 12.0) -> float:
    """Shortest distance between two atom sets in Å (``inf`` beyond ``cutoff``)."""
    _, _, d = pairs_within(a.positions, cutoff, others=b.positions)
    return float(d.min()) if len(d) else float("inf")


def rest_touching(obj: SceneObject, neighbour: SceneObject, support: GeneratedAtoms, direction_deg: float, *,
                  contact_A: float, clearance_A: Mapping[str, float] | None = None,
                  lateral_period_A: Sequence[float] | None = None, tolerance_A: float = 0.02) -> SceneObject:
    """Rest ``obj`` on ``support`` beside ``neighbour`` so that their closest atoms are ``contact_A`` apart.

    ``obj`` is slid towards ``neighbour`` along the in-plane direction ``direction_deg`` (from
    the neighbour's centre), resting on the support at every step; bisection stops when the
    gap is within ``tolerance_A`` above ``contact_A``. When that direction leads out of the field
    (a neighbour near the edge), the directions turned by 45°, 90°, … either way are tried in turn;
    :class:`PlacementError` when none fits.
    """
    for turn in (0.0, 45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0):
        try:
            return _slide_to_contact(obj, neighbour, support, direction_deg + turn, contact_A=contact_A,
                                     clearance_A=clearance_A, lateral_period_A=lateral_period_A,
                                     tolerance_A=tolerance_A)
        except PlacementError:
            continue
    raise PlacementError("no direction lets the particle touch its neighbour inside the field", "touching")


def _slide_to_contact(obj: SceneObject, neighbour: SceneObject, support: GeneratedAtoms, direction_deg: float, *,
                      contact_A: float, clearance_A, lateral_period_A, tolerance_A: float) -> SceneObject:
    u = np.array([np.cos(np.radians(direction_deg)), np.sin(np.radians(direction_deg))])
    centre = neighbour.offset_A[:2]
    reach = float(np.ptp(obj.local_atoms().positions[:, :2], axis=0).max()
                  + np.ptp(neighbour.local_atoms().positions[:, :2], axis=0).max()) + 2 * contact_A
    placed = {}

    def gap(t: float) -> float:
        try:
            cand = rest_on(obj, support, centre + t * u, clearance_A=clearance_A, lateral_period_A=lateral_period_A)
        except PlacementError:  # wholly outside the field there: far from the neighbour, which is inside
            return float("inf")
        placed[t] = cand
        return min_distance_A(cand.atoms(), neighbour.atoms(), cutoff=contact_A + 10.0)

    near, far = 0.0, reach
    if gap(far) < contact_A:
        raise PlacementError("particles are too large to touch inside the field", "touching")
    for _ in range(60):
        mid = (near + far) / 2
        if gap(mid) >= contact_A:
            far = mid
        else:
            near = mid
        if far - near < 1e-3 and gap(far) - contact_A < tolerance_A:
            break
    if far not in placed:  # the contact position itself lies outside the field
        raise PlacementError("the particle would touch its neighbour outside the field", "touching")
    return placed[far]


def lateral_radius_A(obj: SceneObject) -> float:
    """Largest lateral distance (Å) of the object's atoms from its local origin."""
    pos = obj.local_atoms().positions
    return float(np.linalg.norm(pos[:, :2], axis=1).max()) if len(pos) else 0.0


def scatter_xy(radii_A: Sequence[float], field_A: Sequence[float], rng: np.random.Generator, *,
               gap_A: float = 5.0, edge_cut: Sequence[bool] | None = None, max_tries: int = 2000,
               occupied: Sequence[tuple[Sequence[float], float]] = ()) -> np.ndarray:
    """Random lateral centres for discs that do not overlap in projection.

    Parameters
    ----------
    radii_A : sequence of float
        Projected radius of each particle, Å.
    field_A : (float, float)
        Field of view, Å.
    rng : numpy.random.Generator
    gap_A : float
        Smallest edge-to-edge gap between projected discs, Å.
    edge_cut : sequence of bool, optional
        Particles that must cross the field edge (their centre lies within 0.6 radii of an
        edge); the others lie entirely inside the field.
    occupied : sequence of (centre, radius)
        Discs already taken (fixed particles), Å.

    Returns
    -------
    ndarray of shape (n, 2)
    """
    radii = np.asarray(radii_A, dtype=float)
    fx, fy = (float(v) for v in field_A)
    cut = np.zeros(len(radii), bool) if edge_cut is None else np.asarray(edge_cut, bool)
    centres = np.zeros((len(radii), 2))
    for k, r in enumerate(radii):
        for _ in range(max_tries):
            if cut[k]:
                side = rng.integers(4)
                along = rng.uniform(0, fx if side < 2 else fy)
                depth = rng.uniform(-0.6 * r, 0.6 * r)
                c = {0: (depth, along), 1: (fx - depth, along), 2: (along, depth), 3: (along, fy - depth)}[int(side)]
                c = np.array([c[0], c[1]])
            else:
                if 2 * r > min(fx, fy):
                    raise PlacementError(f"a particle of projected diameter {2 * r:.0f} Å does not fit in the "
                                             f"{fx:.0f} x {fy:.0f} Å field", "field.size_A")
                c = np.array([rng.uniform(r, fx - r), rng.uniform(r, fy - r)])
            taken = [(centres[m], radii[m]) for m in range(k)] + [(np.asarray(o, float), float(q)) for o, q in occupied]
            if all(np.linalg.norm(c - o) >= r + q + gap_A for o, q in taken):
                centres[k] = c
                break
        else:
            raise PlacementError(f"could not fit {len(radii)} particles without overlap in the field; "
                                     "use fewer or smaller particles or a larger field", "particles_per_field")
    return centres
