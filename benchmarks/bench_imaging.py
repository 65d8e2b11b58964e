"""Fit and score the HRTEM / bright-field classifier that ``--model auto`` uses for unknown pixel sizes.

Features (:func:`nanofind.segment.imaging.imaging_features`) of simulated training fields of both
kinds are fitted with a logistic regression; held-out sets (other recipes and seeds) are scored,
next to the plain rule "lattice fringes present = HRTEM". With ``--write`` the fit is stored as
``src/nanofind/segment/imaging_classifier.json`` with what it was fitted on and its scores.

    python benchmarks/bench_imaging.py --hrtem-train A.h5 --lowmag-train B.h5 \\
        --hrtem-test C.h5 D.h5 --lowmag-test E.h5 [--real DIR --real-label hrtem --real-weight 10] [-n 400] [--write]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def _features(paths, limit):
    from nanofind.datasets.store import DatasetReader
    from nanofind.segment.fringes import lattice_fringes
    from nanofind.segment.imaging import imaging_features

    rows, fringes, seconds = [], [], []
    for path in paths:
        with DatasetReader(path) as reader:
            for k in range(min(limit, len(reader))):
                image = reader.sample(k).image
                t0 = time.perf_counter()
                f = lattice_fringes(image)
                rows.append(imaging_features(image, fringes=f))
                seconds.append(time.perf_counter() - t0)
                fringes.append(f.present)
    return np.array(rows), np.array(fringes), seconds


def _real_features(folder):
    from nanofind.learn.data import load_folder
    from nanofind.segment.fringes import lattice_fringes
    from nanofind.segment.imaging import imaging_features

    items = load_folder(folder, keep_raw=True)
    rows = [imaging_features(x.raw) for x in items]
    return np.array(rows), np.array([lattice_fringes(x.raw).present for x in items])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hrtem-train", nargs="+", required=True)
    parser.add_argument("--lowmag-train", nargs="+", required=True)
    parser.add_argument("--hrtem-test", nargs="+", default=[])
    parser.add_argument("--lowmag-test", nargs="+", default=[])
    parser.add_argument("--real", help="folder of labelled real micrographs, added to training with --real-label")
    parser.add_argument("--real-label", choices=["hrtem", "lowmag"], default="lowmag")
    parser.add_argument("--real-weight", type=float, default=1.0,
                        help="weight of each real micrograph in the fit, against 1 per simulated field (default 1)")
    parser.add_argument("-n", type=int, default=400, help="images per training file (default 400)")
    parser.add_argument("--write", action="store_true", help="store the fit beside nanofind.segment.imaging")
    args = parser.parse_args()

    from nanofind.segment.imaging import CLASSIFIER_FILE, fit_classifier

    xh, _, t1 = _features(args.hrtem_train, args.n)
    xl, _, t2 = _features(args.lowmag_train, args.n)
    x, y = np.vstack([xh, xl]), np.r_[np.ones(len(xh)), np.zeros(len(xl))]
    sources = [f"{Path(p).name} (HRTEM, first {args.n})" for p in args.hrtem_train] + \
              [f"{Path(p).name} (bright field, first {args.n})" for p in args.lowmag_train]
    weight = np.ones(len(y))
    if args.real:
        xr, _ = _real_features(args.real)
        x, y = np.vstack([x, xr]), np.r_[y, np.full(len(xr), args.real_label == "hrtem")]
        weight = np.r_[weight, np.full(len(xr), args.real_weight)]
        sources.append(f"{Path(args.real).name} ({len(xr)} real, as {args.real_label}, "
                       f"weight {args.real_weight:g} each)")
    fit = fit_classifier(x, y, {"fitted_on": sources, "date": str(date.today()),
                                "made_by": "benchmarks/bench_imaging.py"}, sample_weight=weight)
    train_acc = float(np.mean([(fit.probability_hrtem(r) >= 0.5) == bool(t) for r, t in zip(x, y, strict=True)]))
    print(f"features: {np.median(t1 + t2) * 1000:.0f} ms per image (median; {_cpu()}, 1 thread)")
    print(f"training accuracy {train_acc:.3f} on {len(y)} images")
    scores = {}
    for label, paths in (("hrtem", args.hrtem_test), ("lowmag", args.lowmag_test)):
        for path in paths:
            xt, fringes, _ = _features([path], 10**9)
            p = np.array([fit.probability_hrtem(r) for r in xt])
            right = (p >= 0.5) if label == "hrtem" else (p < 0.5)
            rule = fringes if label == "hrtem" else ~fringes
            scores[Path(path).name] = {"kind": label, "images": len(xt), "classifier_accuracy": round(right.mean(), 4),
                                       "fringe_rule_accuracy": round(rule.mean(), 4)}
            print(f"{Path(path).name:28s} {label:7s} n={len(xt):4d}  classifier {right.mean():.3f}  "
                  f"fringes-present rule {rule.mean():.3f}")
    if args.write:
        fit.record["held_out"] = scores
        fit.record["training_accuracy"] = round(train_acc, 4)
        CLASSIFIER_FILE.write_text(json.dumps(fit.to_record(), indent=1) + "\n")
        print(f"written {CLASSIFIER_FILE}")


if __name__ == "__main__":
    main()
