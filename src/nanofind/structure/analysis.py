"""Local structure of an atomic model, end to end: per-atom classes, grains, defects and a summary.

:func:`analyze_structure` runs :func:`nanofind.structure.local.local_structure` and
:func:`nanofind.structure.defects.find_defects`; :func:`summarize_structure` turns the result into
plain data per model and per particle, including the particle's defect ground truth as an image
would show it (a planar defect counts as visible when the beam, along z, runs within
:data:`~nanofind.structure.defects.VISIBLE_TILT_DEG` of a close-packed row in its plane: edge-on,
with the stacking shift across the beam; see :mod:`nanofind.structure.defects`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from nanofind._version import __version__
from nanofind.structure import defects as defects_mod
from nanofind.structure import local as local_mod
from nanofind.structure.defects import DefectAnalysis, find_defects
from nanofind.structure.local import CLASSES, LocalStructure, local_structure

#: Largest model analysed (about 0.6 kB of working memory per atom).
MAX_ATOMS = 10_000_000
#: A five-fold axis within this many degrees of the beam shows the particle's five-fold symmetry.
AXIS_ALONG_BEAM_DEG = 5.0


@dataclass
class StructureAnalysis:
    """Everything :func:`analyze_structure` finds (per-atom arrays have the model's length)."""

    local: LocalStructure
    defects: DefectAnalysis
    seconds: float = 0.0

    @property
    def class_names(self) -> np.ndarray:
        """Class name of every atom."""
        return self.local.class_names


def analyze_structure(atoms: Atoms, *, cutoff_A: float | None = None,
                      sublattices: Literal["auto", "always", "never"] = "auto") -> StructureAnalysis:
    """Per-atom local structure, grains, planar defects and five-fold axes of a model.

    Parameters
    ----------
    atoms : ase.Atoms
        Any model: a nanofind scene (only particle atoms are analysed), or a tomography or MD
        model. Positions in Å.
    cutoff_A : float, optional
        Coordination cut-off, Å (default 1.28 nearest-neighbour distances, seed 004's 3.75 Å for Pd).
    sublattices : {"auto", "always", "never"}
        Analyse each element of a compound on its own sublattice (see
        :func:`~nanofind.structure.local.local_structure`).
    """
    import time

    from nanofind.errors import NanofindInputError

    if len(atoms) > MAX_ATOMS:
        raise NanofindInputError(f"{len(atoms)} atoms; at most {MAX_ATOMS} are analysed at once")
    start = time.perf_counter()
    local = local_structure(atoms, cutoff_A=cutoff_A, sublattices=sublattices)
    found = find_defects(atoms.positions, local)
    return StructureAnalysis(local, found, time.perf_counter() - start)


def _class_counts(codes: np.ndarray) -> dict:
    counts = Counter(codes.tolist())
    total = max(1, sum(v for k, v in counts.items() if k != 0))
    return {CLASSES[k]: {"atoms": int(counts.get(k, 0)), "fraction": round(counts.get(k, 0) / total, 4)}
            for k in range(1, len(CLASSES)) if counts.get(k, 0)}


def _distinct_normals(planes) -> int:
    normals: list[np.ndarray] = []
    for p in planes:
        n = np.asarray(p.normal)
        if all(abs(n @ m) < np.cos(np.radians(defects_mod.PARALLEL_DEG)) for m in normals):
            normals.append(n)
    return len(normals)


def particle_type(planes, axes, grains: int) -> str:
    """A name for a particle's structure from its planar defects, five-fold axes and grains."""
    kinds = Counter(p.kind for p in planes)
    if len(axes) >= 6:
        return "icosahedron"
    if axes and max(a.twin_planes for a in axes) >= 5:
        return "decahedron"
    if axes:
        return "multiply twinned"
    if kinds["twin"] >= 2 and _distinct_normals([p for p in planes if p.kind == "twin"]) == 1:
        return "lamellar twinned"
    if kinds["twin"] >= 2:
        return "multiply twinned"
    if kinds["twin"] == 1:
        return "twinned"
    if planes:
        return "faulted"
    if grains == 1:
        return "single crystal"
    return "polycrystalline" if grains > 1 else "disordered"


def summarize_structure(atoms: Atoms, result: StructureAnalysis) -> dict:
    """Plain-data summary: class fractions, grains, planes and axes, per model and per particle."""
    local, found = result.local, result.defects
    analysed = local.structure > 0
    names = atoms.info.get("object_names", [])
    object_id = np.asarray(atoms.arrays["object_id"]) if "object_id" in atoms.arrays else None
    particles = []
    planes_kept, axes_kept, grains_kept = [], [], 0
    for p in np.unique(local.particle[analysed]):
        sel = local.particle == p
        groups = sorted(set(local.group[sel].tolist()))
        sublattices = [local.group_element[g] for g in groups if local.group_element[g]]
        # a compound's sublattices carry the same defects: count those of the heaviest element's
        reference = max(sublattices, key=lambda e: atomic_numbers[e]) if sublattices else ""
        planes = [d for d in found.planes if d.particle == p and d.sublattice == reference]
        axes = [a for a in found.axes if a.particle == p and a.sublattice == reference]
        grains = sum(1 for owner in found.grain_owner if owner == (p, reference))
        planes_kept += planes
        axes_kept += axes
        grains_kept += grains
        visible = [d.kind for d in planes if d.visible]
        entry = {"particle": int(p), "atoms": int(sel.sum()),
                 "elements": dict(Counter(np.asarray(chemical_symbols)[atoms.numbers[sel]].tolist())),
                 "type": particle_type(planes, axes, grains), "grains": grains,
                 "classes": _class_counts(local.structure[sel]),
                 "planar_defects": [d.to_dict() for d in planes],
                 "fivefold_axes": [a.to_dict() for a in axes],
                 "visible_planar_defects": visible,
                 "fivefold_axis_along_beam": any(a.angle_to_beam_deg <= AXIS_ALONG_BEAM_DEG for a in axes),
                 "sublattices": sublattices, "counted_on": reference or "all atoms",
                 "nn_distance_A": round(float(np.mean([local.nn_distance_A[g] for g in groups])), 4)}
        if object_id is not None:
            oid = int(object_id[sel][0])
            entry["object_id"] = oid
            entry["name"] = names[oid] if oid < len(names) else f"object {oid}"
        particles.append(entry)
    kinds = Counter(d.kind for d in planes_kept)
    return {
        "nanofind_version": __version__,
        "atoms": len(atoms),
        "analysed_atoms": int(analysed.sum()),
        "seconds": round(result.seconds, 3),
        "atoms_per_second": round(int(analysed.sum()) / max(result.seconds, 1e-9)),
        "classes": _class_counts(local.structure[analysed]),
        "particles": len(particles),
        "grains": grains_kept,
        "twin_planes": kinds.get("twin", 0),
        "planar_defects": dict(kinds),
        "fivefold_axes": len(axes_kept),
        "settings": {"cutoff_per_nn": round(local_mod.CUTOFF_PER_NN, 4), "min_coordination": local_mod.MIN_COORDINATION,
                     "min_order": local_mod.MIN_ORDER, "rhcp_margin": local_mod.RHCP_MARGIN,
                     "rhcp_min_order": local_mod.RHCP_MIN_ORDER,
                     "visible_tilt_deg": defects_mod.VISIBLE_TILT_DEG, "beam": "z"},
        "per_particle": particles,
    }
