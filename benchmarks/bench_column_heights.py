"""Column heights from one HRTEM image (seed 001): train the height network, score it on held-out images.

Run::

    .venv/bin/nanofind simulate examples/recipes/columns-ceo2-110.yaml -n 300 --seed 1 -o DIR/train.h5
    .venv/bin/nanofind simulate examples/recipes/columns-ceo2-110.yaml -n 40 --seed 2 -o DIR/test.h5
    .venv/bin/python benchmarks/bench_column_heights.py --train DIR/train.h5 --test DIR/test.h5 --steps 2500

Training (:mod:`nanofind.columns.training`): every image resampled to the network's pixel size
(``--pixel``, 0.2 Å), soft height-class targets per sublattice (``--elements``, Ce and O), the
network (``--architecture``), random crops turned and mirrored, weighted cross-entropy. Scored on
the held-out images (columns at least 4 px inside) at the true columns and at the columns the
network finds (recall, precision): exact atom count, within ±1 and the expected calibration error
of the confidence, for all columns, per element and by dose (≥ 1000 e/Å², 300–1000, below 300).
Prints one JSON line per stage and names the CPU; ``--save DIR`` writes a model folder
(:mod:`nanofind.columns.model`: weights and a card with the training record and the scores) that
``nanofind columns --method network --model DIR`` reads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench_label_noise import cpu_name
from nanofind.columns.targets import COLUMN_RADIUS_A
from nanofind.columns.training import (
    MAX_HEIGHT,
    MIN_SEPARATION_A,
    NETWORK_PIXEL_A,
    fit_temperature,
    read_examples,
    score_heights,
    train_height_network,
)


def time_frames(model_dir: str, repeats: int = 3) -> dict:
    """Seconds per 1024² frame through ``predict_columns`` (the bundled CeO2 example, mirrored to 1024²).

    Timed at 0.1 Å/px (the network sees 512²) and at the model's own pixel size (it sees 1024²);
    best of ``repeats`` after a warm-up, with the columns found.
    """
    import tifffile

    from nanofind.columns import EXAMPLES_DIR
    from nanofind.columns.model import load_height_model, predict_columns

    model = load_height_model(model_dir)
    example = tifffile.imread(EXAMPLES_DIR / "ceo2_110.tif").astype(np.float32)
    frame = np.pad(example, [(0, 1024 - n) for n in example.shape], mode="symmetric")
    result = {"threads": __import__("torch").get_num_threads()}
    for pixel in (0.1, model.pixel_A):
        predict_columns(model, frame, pixel)
        times, found = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            found = predict_columns(model, frame, pixel)
            times.append(time.perf_counter() - start)
        result[f"1024px_at_{pixel}A"] = {"seconds": round(min(times), 3), "columns": int(len(found.x_px))}
    return result


def score_by_dose(net, test, *, pixel_A: float, symmetric: bool = False, temperature: float = 1.0) -> dict:
    """Scores of ``net`` on all held-out examples and by dose (≥ 1000 e/Å², 300–1000, below 300)."""
    doses = np.array([ex.source.get("dose_e_per_A2") or 0.0 for ex in test])
    options = {"pixel_A": pixel_A, "symmetric": symmetric, "temperature": temperature}
    scores = {"all": score_heights(net, test, **options)}
    for name, low, high in (("dose >= 1000", 1000, np.inf), ("dose 300-1000", 300, 1000), ("dose < 300", 0, 300)):
        chosen = [ex for ex, d in zip(test, doses, strict=True) if low <= d < high]
        if chosen:
            scores[name] = {"images": len(chosen), **score_heights(net, chosen, **options)}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", nargs="+", help="nanofind dataset files to train on")
    parser.add_argument("--test", nargs="+", help="held-out dataset files (other seeds)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=192, help="training crop side, px at the network's pixel size")
    parser.add_argument("--architecture", default="unet", help="unet or seed_unet")
    parser.add_argument("--width", type=int, default=32, help="seed_unet channels")
    parser.add_argument("--pixel", type=float, default=NETWORK_PIXEL_A, help="network pixel size, Å")
    parser.add_argument("--elements", nargs="+", default=["Ce", "O"], help="sublattices told apart")
    parser.add_argument("--max-height", type=int, default=MAX_HEIGHT)
    parser.add_argument("--rate", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda when a GPU is lent")
    parser.add_argument("--save", help="folder for the weights and their record")
    parser.add_argument("--speed", metavar="MODEL_DIR", help="only time 1024² frames through this model")
    parser.add_argument("--init", metavar="MODEL_DIR", help="start from this model's weights (train further)")
    parser.add_argument("--evaluate", metavar="MODEL_DIR", help="only score this model on --test")
    parser.add_argument("--symmetric", action="store_true", help="score the mean over the 8 turns and mirrors")
    parser.add_argument("--calibrate", nargs="+", metavar="H5",
                        help="fit the confidence's temperature on these datasets (neither trained on nor scored); "
                             "with --evaluate, also write it into that model's card")
    args = parser.parse_args()
    cpu = cpu_name()
    if args.speed:
        print(json.dumps({"stage": "speed", "cpu": cpu, **time_frames(args.speed)}), flush=True)
        return
    if args.evaluate:
        from nanofind.columns.model import load_height_model

        model = load_height_model(args.evaluate)
        data = {"pixel_A": model.pixel_A, "max_height": model.max_height, "elements": model.elements}
        temperature = float(model.card.get("temperature", 1.0))
        if args.calibrate:
            calibration = fit_temperature(model.net, read_examples(args.calibrate, **data), pixel_A=model.pixel_A)
            temperature = calibration["temperature"]
            print(json.dumps({"stage": "calibrate", **calibration}), flush=True)
        test = read_examples(args.test, **data)
        start = time.perf_counter()
        scores = score_by_dose(model.net, test, pixel_A=model.pixel_A, symmetric=args.symmetric,
                               temperature=temperature)
        print(json.dumps({"stage": "score", "model": args.evaluate, "symmetric": args.symmetric, "cpu": cpu,
                          "temperature": temperature, "seconds": round(time.perf_counter() - start, 1), **scores}),
              flush=True)
        if args.calibrate and not args.symmetric:
            card = dict(model.card)
            card["temperature"] = temperature
            card["training"] = {**card.get("training", {}), "calibration": [Path(p).name for p in args.calibrate],
                                "calibration_nll": calibration["candidates"],
                                "uncalibrated_held_out_scores": card.get("training", {}).get("held_out_scores"),
                                "held_out_scores": scores}
            from nanofind.columns.model import save_height_model

            save_height_model(args.evaluate, model.net, card)
        return
    if not args.train or not args.test:
        parser.error("--train and --test are needed (or --speed MODEL_DIR)")
    start = time.perf_counter()
    data = {"pixel_A": args.pixel, "max_height": args.max_height, "elements": tuple(args.elements)}
    train, test = read_examples(args.train, **data), read_examples(args.test, **data)
    print(json.dumps({"stage": "data", "train_images": len(train), "test_images": len(test),
                      "seconds": round(time.perf_counter() - start, 1), "cpu": cpu}), flush=True)
    initial = None
    if args.init:
        from nanofind.columns.model import load_height_model

        initial = load_height_model(args.init).net
    start = time.perf_counter()
    net, losses = train_height_network(train, steps=args.steps, crop_px=args.crop, batch_size=args.batch,
                                       learning_rate=args.rate, architecture=args.architecture, width=args.width,
                                       seed=args.seed, device=args.device, initial=initial)
    train_seconds = time.perf_counter() - start
    print(json.dumps({"stage": "train", "steps": args.steps, "seconds": round(train_seconds, 1),
                      "loss_first_50": round(float(np.mean(losses[:50])), 4),
                      "loss_last_50": round(float(np.mean(losses[-50:])), 4), "device": args.device}), flush=True)
    start = time.perf_counter()
    scores = score_by_dose(net, test, pixel_A=args.pixel)
    print(json.dumps({"stage": "score", "seconds": round(time.perf_counter() - start, 1), **scores}), flush=True)
    if args.save:
        from nanofind.columns.model import height_card, save_height_model

        record = {"train": [Path(p).name for p in args.train], "test": [Path(p).name for p in args.test],
                  "train_images": len(train), "steps": args.steps, "batch": args.batch, "crop_px": args.crop,
                  "learning_rate": args.rate, "seed": args.seed, "started_from": args.init, "device": args.device,
                  "cpu": cpu,
                  "train_seconds": round(train_seconds, 1),
                  "losses_every_50": [round(float(np.mean(losses[k:k + 50])), 4) for k in range(0, len(losses), 50)],
                  "held_out_scores": scores}
        card = height_card(architecture=args.architecture, width=args.width, pixel_A=args.pixel,
                           elements=tuple(args.elements), max_height=args.max_height, radius_A=COLUMN_RADIUS_A,
                           min_separation_A=MIN_SEPARATION_A, training=record)
        save_height_model(args.save, net, card)
        record["speed"] = {"cpu": cpu, **time_frames(args.save)}
        print(json.dumps({"stage": "speed", **record["speed"]}), flush=True)
        save_height_model(args.save, net, card)


if __name__ == "__main__":
    main()
