"""The label-noise commands end to end on a held-out chiral set, as a user runs them.

Run: ``.venv/bin/python benchmarks/bench_label_noise_cli.py --set b --error 0.4 [--split-seed 0]
[--work DIR] [-- EXTRA classify train ARGUMENTS]``

For one split of the set's 1000 right-handed originals (``bench_label_noise.HELD_OUT_SETS``): 900
are written as TIFF files and mirror-labelled by ``nanofind dataset mirror-label --minority-fraction
ERROR`` (that fraction of them mirrored first, so their labels are wrong), 10 checked items per hand
are taken from its ``truth.csv`` as the clean set, ``nanofind classify train --labels labels.csv
--clean clean.csv`` trains with every default, and ``nanofind classify --model`` classifies:

- the 100 test originals and their mirrors (clean-test accuracy, 200 images);
- a test population of those originals with a fraction ERROR of them mirrored (minority found
  against the truth).

Prints one JSON line with the times of each command and the CPU named; the benchmark's own
splits and scoring are ``bench_label_noise.py``'s.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench_label_noise import cpu_name, held_out_chiral

CLEAN_PER_HAND = 10
TEST_ORIGINALS = 100


def nanofind(*args: str) -> float:
    """Run one nanofind command (from this interpreter's environment); its wall time, s."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nanofind", *args, "--quiet"], check=True)
    return time.perf_counter() - start


def write_tiffs(folder: Path, images: np.ndarray, names: list[str]) -> None:
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names, strict=True):
        tifffile.imwrite(folder / f"{name}.tif", image.astype(np.float32))


def predicted(classes_csv: Path) -> dict[str, str]:
    """File stem -> predicted class, from ``classify``'s classes.csv."""
    with open(classes_csv, newline="") as fh:
        return {Path(row["file"]).stem: row["class"] for row in csv.DictReader(fh)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="b", choices=["a", "b"])
    parser.add_argument("--error", type=float, default=0.4)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--work", default="label-noise-cli-work")
    parser.add_argument("train_args", nargs="*", help="more classify train arguments, after --")
    args = parser.parse_args()
    work = Path(args.work)
    run = work / f"{args.set}_{args.error:.2f}_{args.split_seed}"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run each time: no stale model or answers
    originals = held_out_chiral(work, 1000, args.set)
    rng = np.random.default_rng(args.split_seed)
    order = rng.permutation(len(originals))
    test, train = order[:TEST_ORIGINALS], order[TEST_ORIGINALS:]
    write_tiffs(run / "originals", originals[train], [f"particle_{i:04d}" for i in train])
    times = {"mirror_label": nanofind("dataset", "mirror-label", str(run / "originals"), "--dominant", "right",
                                      "-o", str(run / "mirror"), "--minority-fraction", str(args.error),
                                      "--seed", str(args.split_seed))}
    with open(run / "mirror" / "truth.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["wrong"].lower() in ("false", "0")]
    clean = [r for hand in ("right", "left") for r in [r for r in rows if r["true_label"] == hand][:CLEAN_PER_HAND]]
    with open(run / "clean.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("file", "label"))
        writer.writerows((r["file"], r["true_label"]) for r in clean)
    times["classify_train"] = nanofind("classify", "train", str(run / "mirror"), "--labels",
                                       str(run / "mirror" / "labels.csv"), "--clean", str(run / "clean.csv"),
                                       "-o", str(run / "model"), *args.train_args)
    x_test = originals[test]
    n_flip = round(args.error * len(test))
    population = np.concatenate([x_test[:, :, ::-1][:n_flip], x_test[n_flip:]])
    write_tiffs(run / "test", np.concatenate([x_test, x_test[:, :, ::-1], population]),
                [f"right_{i}" for i in test] + [f"left_{i}" for i in test]
                + [f"population_{k}" for k in range(len(test))])
    times["classify"] = nanofind("classify", str(run / "test"), "--model", str(run / "model"), "-o", str(run / "out"))
    answers = predicted(run / "out" / "classes.csv")
    right = [answers[f"right_{i}"] == "right" for i in test]
    left = [answers[f"left_{i}"] == "left" for i in test]
    found = np.mean([answers[f"population_{k}"] == "left" for k in range(len(test))])
    card = json.loads((run / "model" / "card.json").read_text())
    print(json.dumps({"set": args.set, "error": args.error, "split_seed": args.split_seed,
                      "accuracy": float(np.mean(right + left)), "minority_true": n_flip / len(test),
                      "minority_found": float(found), "method": card["method"], "channels": card["channels"],
                      "epochs": card["training"]["settings"]["epochs"],
                      "seconds": {k: round(v, 1) for k, v in times.items()}, "cpu": cpu_name()}))


if __name__ == "__main__":
    main()
