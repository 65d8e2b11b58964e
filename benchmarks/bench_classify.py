"""Defect classifiers on held-out simulated crops: seed 004's forest beside the shipped model.

Run (after ``scripts/train-defect-classifier.sh`` made the training crops)::

    .venv/bin/nanofind simulate examples/recipes/classify-test.yaml -n 300 -o test.h5 --seed 2001
    .venv/bin/nanofind classify crops test.h5 -o test_crops
    .venv/bin/python benchmarks/bench_classify.py --train train_crops --test test_crops [--model DIR]
    .venv/bin/python benchmarks/bench_classify.py --test test_crops --speed-crops 1000   # no seed forest

The test recipe differs from the training one (particle counts, sizes, doses, pixel sizes) and its
seed was never trained on. Printed: class-balanced accuracy, per-class recall and the confusion
matrix of the seed's random forest (5 features, 500 trees, Gini; trained here on the training
crops) and of the given model (default: the shipped one); accuracy per material; the population
statistic of seed 004 (fraction faulted among particles on a zone axis) against the truth; and the
time to classify 1000 crops, features included, with the CPU named. Without ``--train`` the seed's
forest is left out; ``--speed-crops N`` times exactly N crops (the test crops repeated, each repeat
turned by a further quarter turn) before the accuracy is scored.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from nanofind.classify.classes import CLASS_NAMES
from nanofind.classify.command import read_crop_folders
from nanofind.classify.crop_pool import WORKERS_ENV, crop_workers
from nanofind.classify.features import feature_matrix
from nanofind.classify.model import load_classifier, train_classifier
from nanofind.classify.population import population_statistics
from nanofind.classify.training import balanced_accuracy, confusion
from nanofind.learn.engine import machine_info


def cpu_name() -> str:
    """The CPU model and whether it has native bf16, as nanofind records beside its times."""
    info = machine_info()
    return f"{info['cpu_model']} ({'native bf16' if info['native_bf16'] else 'no native bf16'})"


def materials(folder: str, files: list[str]) -> list[str]:
    rows = {}
    table = Path(folder) / "crops.csv"
    if table.is_file():
        with open(table, newline="") as fh:
            rows = {str(Path(folder) / r["file"]): r for r in csv.DictReader(fh)}
    return [rows.get(f, {}).get("material", "") or "-" for f in files]


def report(name: str, truth: np.ndarray, predicted: np.ndarray, groups: list[str]) -> None:
    print(f"\n### {name}: class-balanced accuracy {balanced_accuracy(truth, predicted):.3f} "
          f"(plain accuracy {np.mean(truth == predicted):.3f}, {len(truth)} crops)\n")
    print("| true \\ predicted | " + " | ".join(CLASS_NAMES) + " | recall |")
    print("|---" * (len(CLASS_NAMES) + 2) + "|")
    table = confusion(truth, predicted)
    for t in CLASS_NAMES:
        n = max(1, sum(table[t].values()))
        print(f"| {t} | " + " | ".join(str(table[t][p]) for p in CLASS_NAMES) + f" | {table[t][t] / n:.3f} |")
    by = defaultdict(list)
    for k, g in enumerate(groups):
        by[g].append(k)
    print("\n| material | crops | balanced accuracy |\n|---|---|---|")
    for g in sorted(by):
        idx = np.array(by[g])
        print(f"| {g} | {len(idx)} | {balanced_accuracy(truth[idx], predicted[idx]):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs="+", help="training crop folders (for the seed's forest; left out without)")
    parser.add_argument("--test", required=True, help="held-out crop folder")
    parser.add_argument("--model", default="default", help="classifier to score (default: the shipped one)")
    parser.add_argument("--speed-crops", type=int, default=None, metavar="N",
                        help="time exactly N crops (the test crops repeated, turned) instead of the test set")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    test_crops, test_labels, test_files = read_crop_folders([args.test])
    truth = np.asarray(test_labels)
    groups = materials(args.test, test_files)

    seed_pred = None
    if args.train:
        train_crops, train_labels, _ = read_crop_folders(args.train)
        forest = train_classifier(feature_matrix(train_crops, "seed"), train_labels, method="rf", seed=0)
        seed_pred = np.asarray(CLASS_NAMES)[forest.predict_proba(test_crops).argmax(axis=1)]
        report("seed 004's random forest (5 features, 500 trees, Gini)", truth, seed_pred, groups)

    model = load_classifier(args.model)
    timed = test_crops if args.speed_crops is None else [
        np.rot90(test_crops[k % len(test_crops)], k // len(test_crops)).copy() for k in range(args.speed_crops)]
    start = time.perf_counter()
    probabilities = model.predict_proba(timed)
    seconds = time.perf_counter() - start
    start = time.perf_counter()  # again, as analyze runs it: a network's ONNX session is made at first use
    model.predict_proba(timed)
    warm_seconds = time.perf_counter() - start
    if timed is not test_crops:
        probabilities = model.predict_proba(test_crops)
    predicted = np.asarray(CLASS_NAMES)[probabilities.argmax(axis=1)]
    report(f"{args.model} ({model.card['method']})", truth, predicted, groups)

    # population figures over the crops of single crystalline particles, as seed 004 counts them; analyze
    # sums the probabilities (expected counts), the seed counts each particle's class
    single = np.isin(truth, ["fault", "no_fault", "misoriented"])
    true_stats = population_statistics(truth[single])
    for name, guess, p_guess in (("seed forest, counts", seed_pred, None), ("model, counts", predicted, None),
                                 ("model, expected counts (as analyze)", predicted, probabilities)):
        if guess is None:  # no seed forest without --train
            continue
        stats = population_statistics(guess[single], None if p_guess is None else p_guess[single])
        t, p = true_stats["faulted_fraction_on_axis"], stats["faulted_fraction_on_axis"]
        o_t, o_p = true_stats["on_zone_axis_fraction"], stats["on_zone_axis_fraction"]
        print(f"\n{name}: faulted among on-axis {p['value']:.3f} (95 % CI {p['ci95'][0]:.3f}-{p['ci95'][1]:.3f}) "
              f"vs truth {t['value']:.3f} over {t['n']} on-axis particles: {100 * (p['value'] - t['value']):+.1f} pp; "
              f"on axis {o_p['value']:.3f} vs {o_t['value']:.3f} over {o_t['n']} particles")
    mean_side = np.mean([c.shape[0] for c in timed])
    print(f"\nspeed: {len(timed)} crops (mean side {mean_side:.0f} px) in {seconds:.2f} s, "
          f"{1000 * seconds / len(timed):.2f} s per 1000 crops, features included; a second pass "
          f"{1000 * warm_seconds / len(timed):.2f} s per 1000 crops; {crop_workers()} crop worker(s) "
          f"(${WORKERS_ENV}=1 for none); {cpu_name()}")


if __name__ == "__main__":
    main()
