"""Defect classes from cheap, wrong labels: seed 004 ch. 5's methods on nanofind's own problem.

Run (after ``scripts/train-defect-classifier.sh WORK`` cut the crops)::

    .venv/bin/python benchmarks/bench_label_noise_defects.py --train WORK/train_crops WORK/train2_crops \\
        --test WORK/test_crops [--clean-per-class 20] [--epochs 25]

A microscopist labels a few crops per class by hand (``--clean-per-class``, drawn from the
training crops with their true class). The seed's random forest (its five features, 500 trees),
trained on those few, then labels every training crop: cheap labels, many of them wrong. Networks
are trained on the cheap labels with each method of :mod:`nanofind.learn.noisy_labels` (two-step
starts from the hand-labelled crops) and, for reference, on the true labels; all are scored on the
held-out test crops (class-balanced accuracy), beside the forest itself. The network sees the
three 96 × 96 channels of :func:`nanofind.classify.cnn.crop_channels` (whole crop, centre at full
resolution, power spectrum). The CPU is printed beside every time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nanofind.classify.classes import CLASS_NAMES
from nanofind.classify.cnn import crop_channels
from nanofind.classify.command import read_crop_folders
from nanofind.classify.features import feature_matrix
from nanofind.classify.model import train_classifier
from nanofind.classify.training import balanced_accuracy
from nanofind.learn.engine import machine_info
from nanofind.learn.noisy_labels import METHODS, NoisyTrainingSettings, predict_proba, train_noisy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", nargs="+", required=True, help="training crop folders (class sub-folders)")
    parser.add_argument("--test", nargs="+", required=True, help="held-out crop folders")
    parser.add_argument("--clean-per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = machine_info()
    print(f"CPU: {info['cpu_model']} ({'native bf16' if info['native_bf16'] else 'no native bf16'})")
    crops, truth, _ = read_crop_folders(args.train)
    test_crops, test_truth, _ = read_crop_folders(args.test)
    truth, test_truth = np.asarray(truth), np.asarray(test_truth)
    rng = np.random.default_rng(args.seed)
    clean = np.concatenate([rng.permutation(np.flatnonzero(truth == c))[:args.clean_per_class]
                            for c in CLASS_NAMES if np.any(truth == c)])
    start = time.perf_counter()
    seed_features = feature_matrix(crops, "seed")
    forest = train_classifier(seed_features[clean], truth[clean], method="rf", seed=args.seed)
    cheap = np.asarray(CLASS_NAMES)[forest.predict_proba_features(seed_features).argmax(1)]
    cheap[clean] = truth[clean]  # the hand-labelled crops keep their labels
    forest_test = np.asarray(CLASS_NAMES)[forest.predict_proba(test_crops).argmax(1)]
    error = float(np.mean(cheap != truth))
    print(f"{len(crops)} training crops, {len(clean)} labelled by hand; the forest's labels are wrong for "
          f"{100 * error:.1f} % of them ({time.perf_counter() - start:.0f} s); the forest itself scores "
          f"{balanced_accuracy(test_truth, forest_test):.3f} on {len(test_crops)} test crops\n")
    inputs = np.stack([crop_channels(c) for c in crops])
    test_inputs = np.stack([crop_channels(c) for c in test_crops])
    index = {c: k for k, c in enumerate(CLASS_NAMES)}
    y_cheap = np.array([index[c] for c in cheap])
    y_true = np.array([index[c] for c in truth])
    # the seed's two-block network, as docs/benchmarks.md reports it (the default has three blocks)
    settings = NoisyTrainingSettings(epochs=args.epochs, batch_size=128, learning_rate=3e-3, seed=args.seed,
                                     channels=(16, 32))
    print("| labels | method | test balanced accuracy | noise rate used | time |")
    print("|---|---|---|---|---|")
    runs = [("cheap (forest)", m, y_cheap) for m in METHODS] + [("true", "standard", y_true)]
    for label_kind, method, y in runs:
        from dataclasses import replace

        begin = time.perf_counter()
        fit = train_noisy(inputs, y, len(CLASS_NAMES), settings=replace(settings, method=method),
                          clean_images=inputs[clean], clean_labels=y_true[clean])
        predicted = np.asarray(CLASS_NAMES)[predict_proba(fit.networks, test_inputs).argmax(1)]
        rate = "" if fit.noise_rate is None else f"{fit.noise_rate:.3f} ({fit.noise_rate_source})"
        print(f"| {label_kind} | {method} | {balanced_accuracy(test_truth, predicted):.3f} | {rate} | "
              f"{time.perf_counter() - begin:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
