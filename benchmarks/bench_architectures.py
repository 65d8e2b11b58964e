"""Architecture comparison in the style of seed 004's Table 4.1: Dice, IoU, parameters, ms per megapixel.

Every architecture gets the same training data, the same wall-clock training budget on this
machine, the same loss (Dice + CE), augmentation and seed; it is then scored (pooled over pixels,
at its own validation threshold) on one simulated test split that no run trained on. Inference speed
is the sliding-window time of a 1024² image (bf16, all cores) per megapixel. The last line is JSON.

    python benchmarks/bench_architectures.py TRAIN.h5 TEST.h5 [--minutes 3] [--archs unet,seed_unet]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", help="nanofind dataset to train on (15% held out for validation)")
    parser.add_argument("test", help="nanofind dataset to score on (never trained on)")
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per architecture")
    parser.add_argument("--archs", default="seed_unet,unet,unet_resnet18,unet_mobilenetv2,unet_vgg16,fpn_resnet18,"
                                           "deeplab_resnet18")
    args = parser.parse_args()

    from nanofind.learn.data import load_dataset, split
    from nanofind.learn.engine import machine_info, make_runner
    from nanofind.learn.metrics import confusion, pooled_scores
    from nanofind.learn.model_file import load_model
    from nanofind.learn.networks import count_parameters
    from nanofind.learn.train import TrainConfig, train
    from nanofind.segment.inference import predict_normalised

    train_items, val_items = split(load_dataset(args.train), 0.15, seed=0)
    test_items = load_dataset(args.test)
    speed_image = np.random.default_rng(0).normal(size=(1024, 1024)).astype(np.float32)
    results = []
    for arch in args.archs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(architecture=arch, max_epochs=1000, steps_per_epoch=20, patience=1000,
                                 max_minutes=args.minutes, seed=0)
            t = time.perf_counter()
            card = train(config, train_items, val_items, Path(tmp) / arch, progress=False)
            train_s = time.perf_counter() - t
            model, card = load_model(Path(tmp) / arch)
        parameters = count_parameters(model)
        model = make_runner(model)  # the precision and backend auto picks, as segment and analyze run it
        confs = [confusion(predict_normalised(model, x.image) >= card.threshold, x.mask > 0) for x in test_items]
        scores = pooled_scores(confs)
        predict_normalised(model, speed_image[:512, :512])  # warm-up
        t = time.perf_counter()
        predict_normalised(model, speed_image)
        ms_per_mpx = (time.perf_counter() - t) * 1e3 / (speed_image.size / 1e6)
        row = {"architecture": arch, "dice": round(scores["dice"], 4), "iou": round(scores["iou"], 4),
               "parameters": parameters, "ms_per_megapixel": round(ms_per_mpx),
               "epochs": card.training.epochs, "train_s": round(train_s)}
        results.append(row)
        print(f"| {arch} | {row['dice']:.3f} | {row['iou']:.3f} | {row['parameters'] / 1e6:.2f} M | "
              f"{row['ms_per_megapixel']} | {row['epochs']} |", flush=True)
    print(json.dumps({"minutes_per_architecture": args.minutes, "test_images": len(test_items),
                      "machine": machine_info(), "inference_engine": model.engine.record(),
                      "training_engine": card.training.engine, "results": results}))


if __name__ == "__main__":
    main()
