"""Precisions and backends on this machine: inference speed, training speed, and agreement with fp32.

For the shipped model (or ``--model``):

- inference: median seconds of one batch of 4 windows of 512² for PyTorch fp32, PyTorch bf16
  (channels-last) and ONNX Runtime fp32, and which one ``auto`` picks;
- training: steps per second (batch 8, 256² crops, Dice+CE, Adam) in fp32, bf16 and ``auto``;
- agreement: pixel Dice between the masks of each engine and of PyTorch fp32 on the bundled example
  micrographs, segmented as ``nanofind segment`` does (shipped threshold, working pixel range),
  pooled over the examples' pixels (as ``nanofind evaluate`` pools) and for the worst image.

``NANOFIND_CPU_FLAGS=avx2,fma`` makes ``auto`` decide as on an AVX2-only CPU (the timings stay this
CPU's). The last line is JSON with the CPU model and flags.

    python benchmarks/bench_engines.py [--model DIR] [--train-steps 6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

ENGINES = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"))


def train_steps_per_second(model: torch.nn.Module, precision: str, steps: int) -> float:
    """Training steps per second of ``model`` on random 256² crops, batch 8 (after two warm-up steps)."""
    from nanofind.learn.losses import SegmentationLoss
    from nanofind.learn.train import training_step

    bf16 = precision == "bf16"
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = model.train().to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = SegmentationLoss("dice_ce")
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(8, 1, 256, 256)).astype(np.float32))
    masks = torch.from_numpy((rng.random((8, 256, 256)) > 0.7).astype(np.int64))
    times = []
    for k in range(steps + 2):
        t = time.perf_counter()
        training_step(model, optimizer, loss_fn, images, masks, bf16)
        if k >= 2:
            times.append(time.perf_counter() - t)
    return 1.0 / float(np.median(times))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Pixel Dice of two masks (1 when both are empty)."""
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from nanofind.analyze.pipeline import EXAMPLES_DIR, expand_inputs
    from nanofind.io import read_micrograph
    from nanofind.learn.engine import choose_engine, machine_info, make_runner, timed
    from nanofind.learn.model_file import load_model
    from nanofind.segment.inference import predict_probability

    model, card = load_model(args.model)
    auto = choose_engine()
    batch = np.random.default_rng(1).normal(size=(4, 1, 512, 512)).astype(np.float32)
    examples = [read_micrograph(p) for p in expand_inputs([EXAMPLES_DIR])]
    inference, masks = {}, {}
    for backend, precision in ENGINES:
        name = f"{backend}-{precision}"
        runner = make_runner(model, precision, backend)
        inference[name] = round(timed(runner, batch, args.repeats), 4)
        masks[name] = [predict_probability(runner, card, m) >= card.threshold for m in examples]
        print(f"inference {name}: {inference[name]:.3f} s per batch of 4 × 512²", flush=True)
    auto_name = f"{auto.backend}-{auto.precision}"
    reference = masks["torch-fp32"]
    pooled = {name: round(dice(np.concatenate([a.ravel() for a in m]), np.concatenate([b.ravel() for b in reference])),
                          5) for name, m in masks.items()}
    worst = {name: round(min(dice(a, b) for a, b in zip(m, reference, strict=True)), 5) for name, m in masks.items()}
    training = {}
    for precision in ("fp32", "bf16"):
        fresh, _ = load_model(args.model)
        training[precision] = round(train_steps_per_second(fresh, precision, args.train_steps), 3)
        print(f"training {precision}: {training[precision]:.3f} steps/s", flush=True)
    train_auto = choose_engine(training=True).precision
    result = {"machine": machine_info(), "auto_inference": auto.record(), "auto_training_precision": train_auto,
              "inference_s_per_batch4_512": inference, "auto_inference_s": inference[auto_name],
              "fastest_inference": min(inference, key=inference.get),
              "train_steps_per_s": {**training, "auto": training[train_auto]},
              "example_mask_dice_vs_torch_fp32_pooled": pooled, "example_mask_dice_vs_torch_fp32_worst_image": worst,
              "auto_pooled_dice_vs_fp32": pooled[auto_name], "auto_worst_image_dice_vs_fp32": worst[auto_name]}
    print(f"auto picks {auto_name} for inference ({auto.reason}), {train_auto} for training; masks of auto vs "
          f"fp32 on the examples: pooled pixel Dice {pooled[auto_name]:.5f}, worst image {worst[auto_name]:.5f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
