"""One setting of label-noise training on one chiral or digit set, over a few seeds.

Run: ``.venv/bin/python benchmarks/probe_label_noise.py b --error 0.4 --seeds 6 [--input-px 32]
[--set channels=16,32,64 epochs=50 ...] [--work DIR]``

The sweep (``bench_label_noise.py``) runs every method at every label error; this probe runs the
mirror-odd relabel (or ``--method``) at one error with any :class:`NoisyTrainingSettings` field
changed, on the sweep's own split and scoring (``run_one``), to compare settings before a sweep.
Sets: ``chiral`` and ``as-synthesized`` (the sweep's), ``a`` and ``b`` (its held-out sets),
``digits``. The in-plane turns are those ``classify train --rotation auto`` would choose. Prints
one JSON line per seed and the mean ± standard error, with the CPU named; ``docs/benchmarks.md``
quotes its results.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from bench_label_noise import chiral_sets, cpu_name, digit_sevens, held_out_chiral, run_one
from nanofind.classify.image_classifier import choose_rotation, prepare_images
from nanofind.learn.noisy_labels import NoisyTrainingSettings


def parse_override(text: str, settings: NoisyTrainingSettings) -> dict:
    """``key=value`` as a settings field of the field's own type (tuples: comma-separated ints)."""
    key, _, value = text.partition("=")
    types = {f.name: type(getattr(settings, f.name)) for f in fields(settings)}
    types["noise_rate"] = float  # None by default: estimated
    if key not in types:
        raise SystemExit(f"--set {text}: no such setting (one of {', '.join(sorted(types))})")
    kind = types[key]
    if kind is tuple:
        return {key: tuple(int(v) for v in value.split(","))}
    if kind is bool:
        return {key: value.lower() in ("1", "true", "yes")}
    return {key: kind(value) if kind in (int, float, str) else value}


def load_set(name: str, work: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Originals and their true hands (0: right) of one set."""
    if name == "digits":
        images = digit_sevens()
        return images, np.zeros(len(images), int)
    if name in ("a", "b"):
        images = held_out_chiral(work, n, name)
        return images, np.zeros(len(images), int)
    sets = chiral_sets(work, n, n)
    return sets[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set", choices=["chiral", "as-synthesized", "a", "b", "digits"])
    parser.add_argument("--error", type=float, default=0.4,
                        help="label error of the ideal sets (ignored for as-synthesized, which has its own)")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one on")
    parser.add_argument("--method", default="relabel")
    parser.add_argument("--mirror-odd", choices=["yes", "no"], default="yes")
    parser.add_argument("--input-px", type=int, default=32)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="NoisyTrainingSettings fields, e.g. channels=16,32 epochs=50")
    parser.add_argument("--work", default="label-noise-work", help="folder of the cached simulated images")
    parser.add_argument("--chiral", type=int, default=1000, help="simulated originals per chiral set")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    originals, hand = load_set(args.set, work, args.chiral)
    settings = NoisyTrainingSettings(mirror_odd=args.mirror_odd == "yes",
                                     rotation=choose_rotation("auto", originals))
    for text in args.overrides:
        settings = replace(settings, **parse_override(text, settings))
    prepared = prepare_images(list(originals), args.input_px)
    error = None if args.set == "as-synthesized" else args.error
    accuracies = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        start = time.perf_counter()
        run = run_one(prepared, hand, error, args.method, seed, settings)
        first = run["rounds"][0]["accuracy"] if run.get("rounds") else None
        accuracies.append(run["accuracy"])
        print(json.dumps({"seed": seed, "accuracy": run["accuracy"], "first_network": first,
                          "minority_true": run["minority_true"], "minority_found": run["minority_found"],
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    a = np.array(accuracies)
    spread = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0.0
    print(f"{args.set}, error {error}, {args.method}, {args.input_px} px, {settings.channels} channels, "
          f"{settings.epochs} epochs, {settings.rotation} turns: accuracy {a.mean():.3f} ± {spread:.3f} "
          f"over seeds {args.first_seed}–{args.first_seed + len(a) - 1}; CPU {cpu_name()}")


if __name__ == "__main__":
    main()
