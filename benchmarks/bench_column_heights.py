"""Column heights from one HRTEM image (seed 001): train the height network, score it on held-out images.

Run::

    .venv/bin/nanofind simulate examples/recipes/columns-ceo2-110.yaml -n 300 --seed 1 -o DIR/train.h5
    .venv/bin/nanofind simulate examples/recipes/columns-ceo2-110.yaml -n 40 --seed 2 -o DIR/test.h5
    .venv/bin/python benchmarks/bench_column_heights.py --train DIR/train.h5 --test DIR/test.h5 --steps 1500

Training (:mod:`nanofind.columns.training`): every image resampled to 0.12 Å/px, soft height-class
targets, the light U-Net, random 128 px crops turned and mirrored, weighted cross-entropy. Scored at
the true columns of the held-out images (at least 4 px inside): exact atom count, within ±1 and the
expected calibration error of the confidence, for all columns and by dose (≥ 1000 e/Å², 300–1000,
below 300). Prints one JSON line per stage and names the CPU; ``--save DIR`` keeps the weights
(safetensors) with their training record.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench_label_noise import cpu_name
from nanofind.columns.training import read_examples, score_heights, train_height_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", nargs="+", required=True, help="nanofind dataset files to train on")
    parser.add_argument("--test", nargs="+", required=True, help="held-out dataset files (other seeds)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda when a GPU is lent")
    parser.add_argument("--save", help="folder for the weights and their record")
    args = parser.parse_args()
    cpu = cpu_name()
    start = time.perf_counter()
    train, test = read_examples(args.train), read_examples(args.test)
    print(json.dumps({"stage": "data", "train_images": len(train), "test_images": len(test),
                      "seconds": round(time.perf_counter() - start, 1), "cpu": cpu}), flush=True)
    start = time.perf_counter()
    net, losses = train_height_network(train, steps=args.steps, crop_px=args.crop, batch_size=args.batch,
                                       width=args.width, seed=args.seed, device=args.device)
    train_seconds = time.perf_counter() - start
    print(json.dumps({"stage": "train", "steps": args.steps, "seconds": round(train_seconds, 1),
                      "loss_first_50": round(float(np.mean(losses[:50])), 4),
                      "loss_last_50": round(float(np.mean(losses[-50:])), 4), "device": args.device}), flush=True)
    doses = np.array([ex.source.get("dose_e_per_A2") or 0.0 for ex in test])
    scores = {"all": score_heights(net, test)}
    for name, low, high in (("dose >= 1000", 1000, np.inf), ("dose 300-1000", 300, 1000), ("dose < 300", 0, 300)):
        chosen = [ex for ex, d in zip(test, doses, strict=True) if low <= d < high]
        if chosen:
            scores[name] = {"images": len(chosen), **score_heights(net, chosen)}
    print(json.dumps({"stage": "score", **scores}), flush=True)
    if args.save:
        from safetensors.torch import save_file

        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        save_file(net.state_dict(), out / "height_network.safetensors")
        record = {"train": args.train, "test": args.test, "steps": args.steps, "batch": args.batch,
                  "crop_px": args.crop, "width": args.width, "seed": args.seed, "cpu": cpu,
                  "train_seconds": round(train_seconds, 1),
                  "losses_every_50": [round(float(np.mean(losses[k:k + 50])), 4) for k in range(0, len(losses), 50)],
                  "scores": scores}
        (out / "record.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
