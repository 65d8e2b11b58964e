"""Retrieval benchmark of structure matching (issue 17, seed 003): top-1 and top-5 per metric and dose.

    .venv/bin/python benchmarks/bench_match.py --library library.h5 [-n 40] [--doses 2e4 1e5 5e5]
        [--pool low all] [--seed 1] [--json OUT.json]

Queries are drawn from the library's own prototypes and zones (seeded), and made independently of the
library's convolution renderer (`nanofind.library.queries.render_query`: a real slab 20–80 Å thick,
atom by atom, tilted up to 2°, any rotation, shift and mirror, probe blur 0.4–0.6 Å against the
library's 0.45, scan shear and line jitter, Poisson counts at the dose), 512² px at 0.1 Å, and matched
with a pixel size off by up to ±3 %.

A match is right when its prototype and zone are the query's ("exact"; any material of that
prototype), or when it is indistinguishable from the query's entry: the noise-free image of the
query's entry, registered onto it as a query would be, reaches SSIM ≥ 0.95 (same pattern within the
pixel-size tolerance, such as fcc [1 0 0] and bcc [1 0 0] at a 2:√2 ratio of lattice constants).
Pools: "low" draws zones with |u| + |v| + |w| ≤ 2, "all" any entry.

HRTEM libraries (``renderer: hrtem``) are queried with full-multislice images
(`nanofind.library.queries.render_hrtem_query`: 20–60 Å thick, beam tilt up to 1°, defocus anywhere
within ±10 nm, 300 kV, Cs −15 µm, 384² px of 0.1 Å, Poisson counts at the dose in e/Å²), against a
library made by the phase-object approximation at nine defoci; a match is right when prototype and
zone agree.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict

import numpy as np

from nanofind.library.match import METRICS, match_image, rank, register_entry, ssim
from nanofind.library.prototypes import builtin_prototypes, cif_prototype
from nanofind.library.queries import random_conditions, render_hrtem_query, render_query
from nanofind.library.render import render_haadf
from nanofind.library.store import read_library

EQUIVALENT_SSIM = 0.95


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class Equivalence:
    """Whether two entries' patterns are indistinguishable (cached per pair)."""

    def __init__(self, library):
        self.library = library
        self.cache: dict[tuple[int, int], bool] = {}
        self.images: dict[int, np.ndarray] = {}

    def __call__(self, truth: int, other: int) -> bool:
        lib = self.library
        if (lib.prototype[truth], lib.zone[truth]) == (lib.prototype[other], lib.zone[other]):
            return True
        if lib.renderer != "haadf":
            return False  # HRTEM: prototype and zone must agree
        key = (truth, other)
        if key not in self.cache:
            if truth not in self.images:
                self.images[truth] = render_haadf(lib.projection(truth), (256, 256), 0.1,
                                                  sigma_A=float(lib.spec["sigma_A"]), rotation_deg=23.0,
                                                  shift_A=(1.3, 0.7))
            m = register_entry(lib, other, self.images[truth], 0.1)
            self.cache[key] = ssim(m.window, m.aligned) >= EQUIVALENT_SSIM
        return self.cache[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", required=True)
    parser.add_argument("-n", type=int, default=40, help="queries per dose and pool")
    parser.add_argument("--doses", type=float, nargs="+", default=[2e4, 1e5, 5e5], help="e/Å²")
    parser.add_argument("--pool", nargs="+", default=["low", "all"], choices=["low", "all"])
    parser.add_argument("--shortlist", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the per-query results here")
    args = parser.parse_args()

    library = read_library(args.library)
    hrtem = library.renderer == "hrtem"
    protos = {(p.prototype, p.formula): p for p in builtin_prototypes()}
    equivalent = Equivalence(library)
    print(f"library {args.library}: {len(library)} entries; CPU {cpu_name()}; shortlist {args.shortlist}")
    rows = []
    for pool in args.pool:
        members = [i for i in range(len(library)) if pool == "all" or int(np.abs(library.uvw[i]).sum()) <= 2]
        for dose in args.doses:
            rng = np.random.default_rng([args.seed, int(dose), 0 if pool == "low" else 1])
            stats = defaultdict(int)
            defocus = None
            seconds = []
            for _ in range(args.n):
                truth = int(members[rng.integers(len(members))])
                key = (library.prototype[truth], library.formula[truth])
                proto = protos.get(key) or cif_prototype(library.formula[truth])
                uvw = tuple(int(x) for x in library.uvw[truth])
                if hrtem:
                    conditions = random_conditions(rng, dose_e_per_A2=dose, shape=(384, 384), max_tilt_deg=1.0,
                                                   thickness_range_A=(20.0, 60.0))
                    defocus = float(rng.uniform(-100, 100))
                    image = render_hrtem_query(proto.atoms, uvw, conditions, defocus_A=defocus, rng=rng)
                else:
                    conditions = random_conditions(rng, dose_e_per_A2=dose)
                    image = render_query(proto.atoms, uvw, conditions, rng)
                nominal = conditions.pixel_size_A * (1 + rng.uniform(-0.03, 0.03))
                started = time.perf_counter()
                matches, record = match_image(library, image, nominal, metric="all", top=args.shortlist,
                                              shortlist_size=args.shortlist)
                seconds.append(time.perf_counter() - started)
                in_shortlist = any(equivalent(truth, e) for e in record["shortlist"])
                exact_shortlist = any((library.prototype[e], library.zone[e]) ==
                                      (library.prototype[truth], library.zone[truth]) for e in record["shortlist"])
                stats["shortlist"] += in_shortlist
                stats["shortlist_exact"] += exact_shortlist
                result = {"pool": pool, "dose": dose, "truth": library.label(truth), "seconds": seconds[-1],
                          "conditions": conditions.to_dict(), "nominal_pixel_A": nominal,
                          "tilt_deg": conditions.tilt_deg, "defocus_A": defocus if hrtem else None}
                for metric in (*METRICS, "all"):
                    ranked = rank(matches, metric)
                    exact = [(library.prototype[m.entry], library.zone[m.entry]) ==
                             (library.prototype[truth], library.zone[truth]) for m in ranked[:5]]
                    stats[f"{metric}_exact_top1"] += exact[0] if exact else 0
                    stats[f"{metric}_exact_top5"] += any(exact)
                    ok = [equivalent(truth, m.entry) for m in ranked[:5]]
                    stats[f"{metric}_top1"] += ok[0] if ok else 0
                    stats[f"{metric}_top5"] += any(ok)
                    result[f"{metric}_top"] = [library.label(m.entry) for m in ranked[:5]]
                rows.append(result)
            line = {k: v / args.n for k, v in stats.items()}
            print(f"\npool {pool}, dose {dose:.0e} e/Å², {args.n} queries, {np.median(seconds):.2f} s per query "
                  f"(median; max {max(seconds):.2f}); shortlist recall {line['shortlist']:.3f} "
                  f"(exact {line['shortlist_exact']:.3f})")
            print("metric | top-1 | top-5 | top-1 exact | top-5 exact")
            for metric in (*METRICS, "all"):
                print(f"{metric} | {line[metric + '_top1']:.3f} | {line[metric + '_top5']:.3f} | "
                      f"{line[metric + '_exact_top1']:.3f} | {line[metric + '_exact_top5']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
