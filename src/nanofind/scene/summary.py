"""Plain-data summaries of built scenes (atom counts, grains, minimum distances)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from nanofind.scene.neighbours import min_distances_by_pair


def summarize_scene(atoms: Atoms) -> dict:
    """Counts per object and element, grain counts and minimum distances per element pair (Å).

    Minimum distances are taken with the scene's lateral periodicity.
    """
    names = atoms.info.get("object_names", [])
    obj = atoms.arrays["object_id"]
    grain = atoms.arrays["grain_id"]
    symbols = np.array(chemical_symbols)[atoms.numbers]  # as get_chemical_symbols(), without a loop per atom
    objects = []
    for k in sorted(set(obj.tolist())):
        sel = obj == k
        g = grain[sel]
        objects.append({
            "object_id": int(k),
            "name": names[k] if k < len(names) else f"object {k}",
            "atoms": int(sel.sum()),
            "elements": dict(Counter(symbols[sel].tolist())),
            "grains": int(len(set(g[g >= 0].tolist()))),
            "defect_atoms": int(np.count_nonzero(atoms.arrays["defect"][sel])),
        })
    lateral = tuple(atoms.cell.lengths()[:2]) if atoms.pbc[:2].all() else None
    return {
        "atoms": len(atoms),
        "cell_A": [round(float(v), 3) for v in atoms.cell.lengths()],
        "objects": objects,
        "particle_grains": int(len(set(grain[atoms.arrays["is_particle"]].tolist()))),
        "min_distance_A": {k: round(v, 4) for k, v in
                           min_distances_by_pair(atoms.positions, symbols, lateral_period_A=lateral).items()},
    }
