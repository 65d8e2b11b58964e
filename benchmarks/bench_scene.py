"""Scene-building speed and memory: nanofind beside czone (if available) and a plain RSA baseline.

Usage:
    python benchmarks/bench_scene.py [--repeats N] [--czone-python PATH]

Cases (the acceptance scenes of the scene issue):
- particle: examples/recipes/au5nm_110_on_carbon.yaml (5 nm Au on 6 x 6 x 2 nm carbon)
- block:    examples/recipes/carbon_12x12x5.yaml (12 x 12 x 5 nm carbon)

Each run is a fresh process, so peak RSS (ru_maxrss) is per case; times exclude imports.
The baseline is a plain vectorised random sequential addition with scipy's cKDTree (no
periodicity, no exact density control), the reference the issue quotes (about 2.6 s).
The czone cases run if --czone-python (or $CZONE_PYTHON) names a Python with czone.
The last line printed is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"particle": REPO / "examples/recipes/au5nm_110_on_carbon.yaml",
           "block": REPO / "examples/recipes/carbon_12x12x5.yaml"}

NANOFIND_CASE = r"""
import json, resource, sys, time
from nanofind.scene.build import build_scene
from nanofind.scene.recipe import load_recipe
from nanofind.scene.neighbours import min_distances_by_pair
recipe = load_recipe(sys.argv[1])
start = time.perf_counter()
atoms, _ = build_scene(recipe, int(sys.argv[2]))
seconds = time.perf_counter() - start
d = min_distances_by_pair(atoms.positions, atoms.get_chemical_symbols(), lateral_period_A=atoms.cell.lengths()[:2])
print(json.dumps({"seconds": seconds, "atoms": len(atoms), "n_C": int((atoms.numbers == 6).sum()),
                  "n_Au": int((atoms.numbers == 79).sum()), "min_CC_A": d.get("C-C"), "min_AuC_A": d.get("Au-C"),
                  "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PLAIN_RSA_CASE = r"""
import json, resource, time
import numpy as np
from scipy.spatial import cKDTree
rng = np.random.default_rng(0)
box = np.array([120.0, 120.0, 50.0]); n_target = 72200; d = 1.3
start = time.perf_counter()
pos = np.zeros((0, 3))
while len(pos) < n_target:
    cand = rng.uniform(0, box, size=(n_target - len(pos), 3))
    if len(pos):
        cand = cand[cKDTree(pos).query(cand, distance_upper_bound=d)[0] > d]
    pairs = cKDTree(cand).query_pairs(d, output_type="ndarray")
    keep = np.ones(len(cand), bool); keep[pairs[:, 1]] = False
    pos = np.vstack([pos, cand[keep]])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "atoms": len(pos), "n_C": len(pos),
                  "min_CC_A": float(cKDTree(pos).query(pos, k=2)[0][:, 1].min()),
                  "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

IMPORT_ONLY = r"""
import json, resource
import nanofind.scene.build, nanofind.scene.neighbours  # noqa
print(json.dumps({"peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summarise(runs: list[dict]) -> dict:
    best = dict(runs[0])
    best["seconds_median"] = statistics.median(r["seconds"] for r in runs)
    best["seconds_min"] = min(r["seconds"] for r in runs)
    best["peak_rss_MB"] = max(r["peak_rss_MB"] for r in runs)
    best.pop("seconds", None)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--czone-python", default=os.environ.get("CZONE_PYTHON"))
    args = parser.parse_args()
    results: dict = {"import_only": _run([sys.executable, "-c", IMPORT_ONLY])}
    for case, recipe in RECIPES.items():
        runs = [_run([sys.executable, "-c", NANOFIND_CASE, str(recipe), str(seed)]) for seed in range(args.repeats)]
        results[f"nanofind_{case}"] = _summarise(runs)
        if args.czone_python:
            script = str(REPO / "benchmarks" / "czone_cases.py")
            results[f"czone_{case}"] = _summarise([_run([args.czone_python, script, case])
                                                   for _ in range(args.repeats)])
    results["plain_rsa_block"] = _summarise([_run([sys.executable, "-c", PLAIN_RSA_CASE])
                                             for _ in range(args.repeats)])
    for name, r in results.items():
        figures = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
        print(f"{name:20s} {figures}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
