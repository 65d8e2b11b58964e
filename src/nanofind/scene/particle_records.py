"""Per-particle ground truth of a built scene: what each particle is, how it is seen, what it touches.

:func:`scene_particle_facts` derives, once per scene, the facts that do not depend on the image:
material, shape, orientation relative to the beam, grains, defects, contacts. They come from the
drawn specification (:func:`nanofind.scene.recipe.sample_scene_spec`) and the scene's label arrays
(:mod:`nanofind.scene.labels`); particle ``k`` of the specification is scene object ``k``.
:func:`particle_records` adds what one image shows of each particle (its footprint in the
instance map of :func:`nanofind.scene.labels.project_instances`).

Orientation: the rotation of each particle is :func:`nanofind.scene.build.particle_frame`, the frame
the scene builder builds it in, repeated from the particle's own seed (random orientations and
random defect planes come out the same). The beam runs along z.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import product

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from nanofind.scene import build
from nanofind.scene.concrete import MULTIPLY_TWINNED_SHAPES, ConcreteParticle
from nanofind.scene.labels import DefectFlag
from nanofind.scene.lattice import (
    atomic_volume,
    load_unit_cell,
    material_label,
    plane_normal,
)
from nanofind.scene.multiply_twinned import IcosahedronGenerator, icosahedron_vertices

#: A particle is on its zone axis when the beam lies within this angle of it, degrees.
ON_ZONE_TOLERANCE_DEG = 1.0
#: A planar defect is edge-on when its plane contains the beam within this angle (its normal is
#: perpendicular to the beam within it), degrees.
EDGE_ON_TOLERANCE_DEG = 1.0
#: Largest |index| of the crystal directions considered as zone axes.
ZONE_AXIS_MAX_INDEX = 3
#: Two particles touch when their footprints (discs of ``atom_radius_A`` around the projected atoms)
#: come closer than this, Å.
CONTACT_GAP_A = 1.0


def particle_seeds(scene_seed: int, draw_attempt: int, n_particles: int) -> list[int]:
    """The seeds :func:`nanofind.scene.build.build_scene` gave each particle of a scene.

    ``draw_attempt`` is the spec's ``draw_attempt`` (the draw that could be placed).
    """
    return build.particle_seeds(build.build_seed(int(scene_seed), draw_attempt), n_particles)


def particle_orientation(p: Mapping | ConcreteParticle, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotation (crystal or MTP frame to lab) of a particle specification, and its planar-defect normal.

    ``seed`` is the particle's own seed (:func:`particle_seeds`). The normal is the lab-frame unit
    normal of the particle's planar defects (None without them).
    """
    p = ConcreteParticle.from_mapping(p)
    unit_cell = load_unit_cell(p.material)
    frame = build.particle_frame(p, unit_cell, np.random.default_rng(seed))
    if frame.defect_plane_hkl is None:
        return frame.rotation, None
    return frame.rotation, frame.rotation @ plane_normal(np.asarray(unit_cell.cell), frame.defect_plane_hkl)


def _angle_to_beam_deg(directions: np.ndarray) -> np.ndarray:
    unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.abs(unit[..., 2]), 0.0, 1.0)))


def nearest_zone_axis(cell: np.ndarray, rotation: np.ndarray,
                      max_index: int = ZONE_AXIS_MAX_INDEX) -> tuple[list[int], float]:
    """The crystal direction [uvw] (|indices| ≤ ``max_index``) nearest the beam, and the angle to it in degrees.

    Indices refer to the rows of ``cell`` (three-index also for hexagonal cells); the sign is the
    one pointing along +z. Of directions at the same angle the one with the smallest indices wins.
    """
    r = range(-max_index, max_index + 1)
    uvw = np.array([v for v in product(r, r, r) if any(v) and np.gcd.reduce(np.abs(v)) == 1])
    uvw = uvw[np.argsort(np.abs(uvw).sum(axis=1), kind="stable")]
    angles = _angle_to_beam_deg(uvw @ cell @ rotation.T)
    best = int(np.argmin(np.round(angles, 9)))
    direction = uvw[best] if (uvw[best] @ cell @ rotation.T)[2] >= 0 else -uvw[best]
    return [int(v) for v in direction], float(angles[best])


def mtp_symmetry_axes(shape: str) -> dict[str, np.ndarray]:
    """Symmetry axes (unit vectors, MTP frame) of a regular decahedron or icosahedron, by name."""
    if shape == "decahedron":
        phi = np.radians(np.arange(5) * 72.0)
        return {"5fold": np.array([[0.0, 0.0, 1.0]]),
                "2fold": np.column_stack([np.cos(phi), np.sin(phi), np.zeros(5)])}
    v = icosahedron_vertices()
    faces = IcosahedronGenerator("Au", 1.0).faces()
    edges = sorted({tuple(sorted((int(f[a]), int(f[b])))) for f in faces for a, b in ((0, 1), (1, 2), (0, 2))})
    return {"5fold": v, "3fold": v[faces].sum(axis=1), "2fold": np.array([v[i] + v[j] for i, j in edges])}


def nearest_mtp_axis(shape: str, rotation: np.ndarray) -> tuple[str, float]:
    """The symmetry axis of a multiply twinned particle nearest the beam, and the angle to it in degrees."""
    best = min(((float(_angle_to_beam_deg(axes @ rotation.T).min()), name)
                for name, axes in mtp_symmetry_axes(shape).items()), key=lambda t: (round(t[0], 9), t[1]))
    return best[1], best[0]


def mtp_twin_normals(shape: str) -> np.ndarray:
    """Unit normals (MTP frame) of the twin boundaries between segments: 5 (decahedron) or 30 (icosahedron).

    Decahedron boundaries are the planes through the five-fold axis at the ideal 72° azimuths;
    icosahedron boundaries are the planes through the centre and each edge.
    """
    if shape == "decahedron":
        phi = np.radians(np.arange(5) * 72.0)
        return np.column_stack([-np.sin(phi), np.cos(phi), np.zeros(5)])
    v = icosahedron_vertices()
    faces = IcosahedronGenerator("Au", 1.0).faces()
    edges = sorted({tuple(sorted((int(f[a]), int(f[b])))) for f in faces for a, b in ((0, 1), (1, 2), (0, 2))})
    n = np.array([np.cross(v[i], v[j]) for i, j in edges])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _edge_on(normals: np.ndarray) -> list[bool]:
    return [bool(x) for x in np.abs(normals[:, 2]) < np.sin(np.radians(EDGE_ON_TOLERANCE_DEG))]


def _defect_kinds(p: ConcreteParticle, flags: int, n_grains: int) -> list[str]:
    kinds = []
    if p.shape in MULTIPLY_TWINNED_SHAPES:
        kinds.append("mtp")
    elif flags & DefectFlag.TWIN_BOUNDARY:
        kinds.append("lamellae" if n_grains > 2 else "twin")
    if flags & DefectFlag.STACKING_FAULT:
        kinds.append("extrinsic_fault" if p.planar_defect == "extrinsic" else "intrinsic_fault")
    if flags & DefectFlag.VACANCY_NEIGHBOUR:
        kinds.append("vacancies")
    if flags & DefectFlag.SUBSTITUTION:
        kinds.append("substitutions")
    return kinds


def _contacts(xy_by_particle: dict[int, np.ndarray], reach_A: float) -> dict[int, list[int]]:
    """Particles whose projected atoms come within ``reach_A`` of each other's."""
    trees = {k: cKDTree(xy) for k, xy in xy_by_particle.items() if len(xy)}
    keys = sorted(trees)
    touching: dict[int, list[int]] = {k: [] for k in xy_by_particle}
    for a_i, a in enumerate(keys):
        for b in keys[a_i + 1:]:
            if trees[a].count_neighbors(trees[b], reach_A) > 0:
                touching[a].append(b)
                touching[b].append(a)
    return touching


def _clusters(touching: dict[int, list[int]]) -> dict[int, int]:
    """Size of the touching cluster each particle belongs to."""
    size, seen = {}, set()
    for start in touching:
        if start in seen:
            continue
        group, stack = set(), [start]
        while stack:
            k = stack.pop()
            if k not in group:
                group.add(k)
                stack.extend(touching[k])
        seen |= group
        size.update({k: len(group) for k in group})
    return size


def scene_particle_facts(atoms: Atoms, spec: Mapping, scene_seed: int, *,
                         atom_radius_A: float = 1.5) -> dict[int, dict]:
    """Image-independent ground truth of every particle of a scene, keyed by instance id (object_id + 1).

    Parameters
    ----------
    atoms : ase.Atoms
        The scene, with its label arrays.
    spec : mapping
        The drawn specification it was built from (with ``draw_attempt``).
    scene_seed : int
        The seed :func:`nanofind.scene.build.build_scene` was called with.
    atom_radius_A : float
        Footprint radius around projected atoms (Å), as for the mask; sets the contact distance.

    Returns
    -------
    dict
        Per id: ``id``, ``object_id``, ``material``, ``shape``, ``volume_equivalent_diameter_nm``,
        ``zone_axis``, ``off_axis_tilt_deg``, ``on_zone_axis``, ``n_grains``, ``defects``,
        ``planar_defects_edge_on``, ``touching``, ``touching_ids``, ``agglomerate``,
        ``agglomerate_size``, ``source: "scene"``, and from the atoms themselves
        (:mod:`nanofind.structure`): ``structure_type``, ``structure_grains``,
        ``structure_planar_defects``, ``visible_planar_defects`` and ``fivefold_axis_along_beam``
        (see docs/dataset-format.md).
    """
    specs = [ConcreteParticle.from_mapping(p) for p in spec.get("particles", [])]
    seeds = particle_seeds(scene_seed, int(spec.get("draw_attempt", 0)), len(specs))
    particle = np.asarray(atoms.arrays["is_particle"], bool)
    object_id = np.asarray(atoms.arrays["object_id"])
    grain, defect = np.asarray(atoms.arrays["grain_id"]), np.asarray(atoms.arrays["defect"])
    members = {k: np.flatnonzero(particle & (object_id == k)) for k in range(len(specs))}
    touching = _contacts({k: atoms.positions[idx, :2] for k, idx in members.items()},
                         2 * atom_radius_A + CONTACT_GAP_A)
    cluster = _clusters(touching)
    structure = _structure_by_object(atoms)
    facts = {}
    for k, p in enumerate(specs):
        idx = members[k]
        if not len(idx):
            continue
        rotation, defect_normal = particle_orientation(p, seeds[k])
        n_grains = len(np.unique(grain[idx]))
        flags = int(np.bitwise_or.reduce(defect[idx]))
        unit_cell = load_unit_cell(p.material)
        if p.shape in MULTIPLY_TWINNED_SHAPES:
            axis, tilt = nearest_mtp_axis(p.shape, rotation)
            edge_on = _edge_on(mtp_twin_normals(p.shape) @ rotation.T)
        else:
            axis, tilt = nearest_zone_axis(np.asarray(unit_cell.cell), rotation)
            planes = len(p.planar_positions_A) if defect_normal is not None else 0
            edge_on = _edge_on(np.tile(defect_normal, (planes, 1))) if planes else []
        volume_A3 = len(idx) * atomic_volume(unit_cell) / (1.0 - p.vacancy_fraction)
        facts[k + 1] = {
            "id": k + 1, "object_id": k, "source": "scene",
            "material": material_label(p.material),
            "formula": unit_cell.get_chemical_formula(empirical=True), "shape": p.shape,
            "volume_equivalent_diameter_nm": float((6 * volume_A3 / np.pi) ** (1 / 3) / 10),
            "zone_axis": axis, "off_axis_tilt_deg": tilt, "on_zone_axis": tilt < ON_ZONE_TOLERANCE_DEG,
            "n_grains": n_grains, "defects": _defect_kinds(p, flags, n_grains), "planar_defects_edge_on": edge_on,
            "touching": bool(touching[k]), "touching_ids": [j + 1 for j in sorted(touching[k])],
            "agglomerate": cluster[k] >= 2, "agglomerate_size": cluster[k], **structure.get(k, {})}
    return facts


def _structure_by_object(atoms: Atoms) -> dict[int, dict]:
    """Each particle's defects as its atoms show them (:mod:`nanofind.structure`), by object id."""
    from nanofind.structure.analysis import analyze_structure, summarize_structure

    summary = summarize_structure(atoms, analyze_structure(atoms))
    out = {}
    for p in summary["per_particle"]:
        planes = [{"kind": d["kind"], "tilt_from_edge_on_deg": round(d["tilt_from_edge_on_deg"], 2),
                   "beam_to_row_deg": round(d["beam_to_row_deg"], 2)} for d in p["planar_defects"]]
        out[p["object_id"]] = {"structure_type": p["type"], "structure_grains": p["grains"],
                               "structure_planar_defects": planes,
                               "visible_planar_defects": p["visible_planar_defects"],
                               "fivefold_axis_along_beam": p["fivefold_axis_along_beam"]}
    return out


def particle_records(facts: Mapping[int, dict], footprints: Mapping[int, dict]) -> list[dict]:
    """Records of the particles visible in one image: scene facts plus the image's footprint facts.

    ``footprints`` maps instance id to ``area_px``, ``equivalent_diameter_nm``, ``centroid_px``
    and ``cut_by_edge`` (:func:`nanofind.datasets.sample.footprint_facts`); particles without a
    footprint in the image get no record.
    """
    return [{**facts[i], **footprints[i]} for i in sorted(footprints) if i in facts]
