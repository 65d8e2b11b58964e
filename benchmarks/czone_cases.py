"""The two benchmark scenes built with Construction Zone (czone 2022.9.19), for comparison.

Run by bench_scene.py with a Python that has czone installed:
    CZONE_PYTHON=/path/to/venv/bin/python python benchmarks/bench_scene.py
czone 2022.9.19 imports ``pymatgen.Element``, which recent pymatgen moved to ``pymatgen.core``;
the alias below restores it without changing czone. Prints one JSON line.
"""

import contextlib
import json
import resource
import sys
import time

import numpy as np
import pymatgen
import pymatgen.core
from scipy.spatial import cKDTree

if not hasattr(pymatgen, "Element"):
    pymatgen.Element = pymatgen.core.Element

with contextlib.redirect_stdout(sys.stderr):
    from czone.generator import AmorphousGenerator, Generator
    from czone.scene import Scene
    from czone.transform import Rotation, rot_vtv
    from czone.volume import Sphere, Volume, makeRectPrism

CARBON_ATOMS_PER_A3 = 2.0 / 12.011 * 6.02214076e23 * 1e-24  # 2.0 g/cm3


def _carbon(dims, priority):
    gen = AmorphousGenerator(min_dist=1.3, density=CARBON_ATOMS_PER_A3, species=6)
    return Volume(points=makeRectPrism(*dims), generator=gen, priority=priority)


def particle():
    gold = Generator.from_spacegroup(Z=[79], coords=np.zeros((1, 3)), cellDims=4.078 * np.ones(3),
                                     cellAngs=[90.0, 90.0, 90.0], sgn=225)
    gold.transform(Rotation(matrix=rot_vtv([1, 1, 0], [0, 0, 1])))
    centre = np.array([30.0, 30.0, 45.0])
    ball = Volume(alg_objects=[Sphere(radius=25.0, center=centre)], generator=gold, priority=0)
    scene = Scene(bounds=np.array([[0.0, 0.0, 0.0], [60.0, 60.0, 70.0]]), objects=[ball, _carbon((60, 60, 20), 1)])
    scene.populate()
    return scene.all_atoms, np.asarray(scene.all_species).astype(int)


def block():
    scene = Scene(bounds=np.array([[0.0, 0.0, 0.0], [120.0, 120.0, 50.0]]), objects=[_carbon((120, 120, 50), 0)])
    scene.populate()
    return scene.all_atoms, np.asarray(scene.all_species).astype(int)


def main():
    case = sys.argv[1]
    with contextlib.redirect_stdout(sys.stderr):  # czone prints debug lines while populating
        start = time.perf_counter()
        pos, species = {"particle": particle, "block": block}[case]()
        seconds = time.perf_counter() - start
    c, au = pos[species == 6], pos[species == 79]
    out = {"seconds": seconds, "atoms": int(len(pos)), "n_C": int(len(c)), "n_Au": int(len(au)),
           "min_CC_A": float(cKDTree(c).query(c, k=2)[0][:, 1].min()),
           "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if len(au):
        out["min_AuC_A"] = float(cKDTree(c).query(au)[0].min())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
