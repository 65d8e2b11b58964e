"""Scene-building speed and memory: nanofind beside czone (if available) and a plain RSA baseline.

Usage:
    python benchmarks/bench_scene.py [--repeats N] [--czone-python PATH] [--cases build,e2e]

Cases (the acceptance scenes of the scene issue):
- particle: examples/recipes/au5nm_110_on_carbon.yaml (5 nm Au on 6 x 6 x 2 nm carbon)
- block:    examples/recipes/carbon_12x12x5.yaml (12 x 12 x 5 nm carbon)

Each run is a fresh process, so peak RSS (ru_maxrss) is per case; times exclude imports.
The baseline is a plain vectorised random sequential addition with scipy's cKDTree (no
periodicity, no exact density control), the reference the issue quotes (about 2.6 s).
The czone cases run if --czone-python (or $CZONE_PYTHON) names a Python with czone.

End to end (``--cases e2e``, part of the default run): ``nanofind scene carbon_12x12x5.yaml -o ...
--seed 0`` (build, summary, extxyz write, table printed) against the plain RSA plus
``ase.io.write(path, atoms, format="extxyz")`` of the same 72 200 atoms, both without imports,
alternating in one run:
- ``e2e_cli``: in a fresh process, import what the scene command imports, then time
  ``nanofind.cli.main([...])``; modules the command still imported while timed are listed (none
  expected, so the import time is all excluded);
- ``e2e_cli_subprocess``: the wall time of the ``nanofind`` command in a subprocess minus the
  wall time of a subprocess that only imports those modules (interpreter start-up cancels out);
- ``e2e_plain``: the plain RSA plus ASE's extxyz writer, in one process, imports excluded.
``e2e_ratio`` is the median of e2e_cli over the median of e2e_plain (<= 1 means no slower), with
the ratios of the subprocess figure and of the best times beside it. ``machine`` records the CPU.
The last line printed is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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

#: The plain vectorised cKDTree random sequential addition both baselines time (72 200 C atoms, 1.3 Å).
RSA_LOOP = r"""
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
"""

PLAIN_RSA_CASE = r"""
import json, resource, time
import numpy as np
from scipy.spatial import cKDTree
""" + RSA_LOOP + r"""seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "atoms": len(pos), "n_C": len(pos),
                  "min_CC_A": float(cKDTree(pos).query(pos, k=2)[0][:, 1].min()),
                  "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

IMPORT_ONLY = r"""
import json, resource
import nanofind.scene.build, nanofind.scene.neighbours  # noqa
print(json.dumps({"peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


#: Everything ``nanofind scene`` imports for an extended XYZ output and the summary table.
SCENE_COMMAND_IMPORTS = ("nanofind.cli", "nanofind.scene.build", "nanofind.scene.io", "nanofind.scene.recipe",
                         "nanofind.scene.summary", "ase.io.extxyz", "rich.console", "rich.table",
                         "rich._emoji_codes")

E2E_IMPORTS_ONLY = r"""
import importlib, json, sys, time
start = time.perf_counter()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

E2E_CLI_CASE = r"""
import importlib, json, resource, sys, time
start = time.perf_counter()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
import_seconds = time.perf_counter() - start
before = set(sys.modules)
from nanofind.cli import main
start = time.perf_counter()
rc = main(["scene", sys.argv[2], "-o", sys.argv[3], "--seed", "0"])
seconds = time.perf_counter() - start
print()
print(json.dumps({"seconds": seconds, "import_seconds": import_seconds, "rc": rc,
                  "imported_while_timed": sorted(set(sys.modules) - before),
                  "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

E2E_PLAIN_CASE = r"""
import json, resource, sys, time
import numpy as np
from scipy.spatial import cKDTree
from ase import Atoms
import ase.io, ase.io.extxyz  # noqa
""" + RSA_LOOP + r"""rsa_seconds = time.perf_counter() - start
atoms = Atoms(numbers=np.full(len(pos), 6), positions=pos, cell=[120.0, 120.0, 53.0], pbc=(True, True, False))
ase.io.write(sys.argv[1], atoms, format="extxyz")
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rsa_seconds": rsa_seconds, "write_seconds": seconds - rsa_seconds,
                  "atoms": len(pos), "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def machine_info() -> dict:
    """CPU model and flags (nanofind.learn.engine.machine_info when present), cores, load, versions."""
    try:
        from nanofind.learn.engine import machine_info as engine_machine_info

        info = dict(engine_machine_info())
    except Exception:  # an optional helper (another stage of the project): read /proc/cpuinfo instead
        info = {}
    model, flags = "unknown", []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    info.setdefault("cpu_model", model)
    info["cpu_flags_all"] = flags
    info.setdefault("logical_cpus", os.cpu_count())
    info["load_average_at_end"] = list(os.getloadavg())
    import ase
    import numpy
    import scipy

    info.update(numpy=numpy.__version__, scipy=scipy.__version__, ase=ase.__version__)
    return info


def _wall(cmd: list[str]) -> float:
    """Wall time of a subprocess, s (output captured as for the other cases)."""
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def end_to_end(repeats: int) -> dict:
    """The CLI case and the plain RSA + ASE write case, alternating, in one run."""
    recipe = str(RECIPES["block"])
    imports = ",".join(SCENE_COMMAND_IMPORTS)
    exe = Path(sys.executable).parent / "nanofind"
    cli_cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "nanofind"]
    cli, sub, plain = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "scene.extxyz")
        for _ in range(repeats):
            cli.append(_run([sys.executable, "-c", E2E_CLI_CASE, imports, recipe, out]))
            plain.append(_run([sys.executable, "-c", E2E_PLAIN_CASE, str(Path(tmp) / "plain.extxyz")]))
            wall = _wall([*cli_cmd, "scene", recipe, "-o", out, "--seed", "0"])
            import_wall = _wall([sys.executable, "-c", E2E_IMPORTS_ONLY, imports])
            sub.append({"seconds": wall - import_wall, "wall_seconds": wall, "import_wall_seconds": import_wall,
                        "peak_rss_MB": 0.0})
    e2e = {"e2e_cli": _summarise(cli), "e2e_cli_subprocess": _summarise(sub), "e2e_plain": _summarise(plain)}
    e2e["e2e_cli"]["import_seconds_median"] = statistics.median(r["import_seconds"] for r in cli)
    e2e["e2e_cli"]["imported_while_timed"] = sorted({m for r in cli for m in r["imported_while_timed"]})
    e2e["e2e_cli"].pop("import_seconds", None)
    e2e["e2e_cli_subprocess"].pop("peak_rss_MB")
    for key in ("wall_seconds", "import_wall_seconds"):
        e2e["e2e_cli_subprocess"][f"{key}_median"] = statistics.median(r[key] for r in sub)
        e2e["e2e_cli_subprocess"].pop(key)
    for key in ("rsa_seconds", "write_seconds"):
        e2e["e2e_plain"][f"{key}_median"] = statistics.median(r[key] for r in plain)
        e2e["e2e_plain"].pop(key, None)
    base = e2e["e2e_plain"]
    e2e["e2e_ratio"] = {
        "cli_over_plain_median": e2e["e2e_cli"]["seconds_median"] / base["seconds_median"],
        "cli_over_plain_best": e2e["e2e_cli"]["seconds_min"] / base["seconds_min"],
        "subprocess_over_plain_median": e2e["e2e_cli_subprocess"]["seconds_median"] / base["seconds_median"],
        "per_repeat": [round(c["seconds"] / p["seconds"], 3) for c, p in zip(cli, plain, strict=True)],
    }
    return e2e


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
    parser.add_argument("--cases", default="build,e2e", help="comma-separated: build (the scene-building "
                        "cases above), e2e (end to end, see above); default both")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    load_at_start = list(os.getloadavg())
    # the machine figures are read last: the optional helper imports torch, and a child's peak RSS
    # (ru_maxrss) starts from its parent's at fork
    results: dict = {"machine": {}, "import_only": _run([sys.executable, "-c", IMPORT_ONLY])}
    if "e2e" in cases:
        results.update(end_to_end(args.repeats))
    for case, recipe in (RECIPES.items() if "build" in cases else ()):
        runs = [_run([sys.executable, "-c", NANOFIND_CASE, str(recipe), str(seed)]) for seed in range(args.repeats)]
        results[f"nanofind_{case}"] = _summarise(runs)
        if args.czone_python:
            script = str(REPO / "benchmarks" / "czone_cases.py")
            results[f"czone_{case}"] = _summarise([_run([args.czone_python, script, case])
                                                   for _ in range(args.repeats)])
    if "build" in cases:
        results["plain_rsa_block"] = _summarise([_run([sys.executable, "-c", PLAIN_RSA_CASE])
                                                 for _ in range(args.repeats)])
    results["machine"] = {**machine_info(), "load_average_at_start": load_at_start}
    for name, r in results.items():
        if name == "machine":
            print(f"{name:20s} {r.get('cpu_model')}, {r.get('logical_cpus')} CPUs, load average "
                  f"{r['load_average_at_start'][0]:.2f} at start, {r['load_average_at_end'][0]:.2f} at end")
            continue
        figures = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
        print(f"{name:20s} {figures}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
