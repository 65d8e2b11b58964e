"""Whole-micrograph segmentation speed and memory of a model (default: the shipped one).

A 4096 × 4096 micrograph is tiled from the bundled real micrographs' statistics (a synthetic field
of dark discs on a noisy background with the shipped pixel size); the model segments it with the
default sliding window (512 px, overlap 0.25, batches of 4, bf16) on all cores. Start-up (imports,
model loading) is timed separately. Peak memory is the process's maximum resident set size. The
last line is JSON.

    python benchmarks/bench_segment.py [--size 4096] [--model DIR] [--tta]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def synthetic_micrograph(size: int, seed: int = 0) -> np.ndarray:
    """A size² bright-field-like field: particles darker than a speckled carbon background."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    image = 150 + 12 * gaussian_filter(rng.normal(size=(size, size)), 1.5) / 0.2
    yy, xx = np.ogrid[:size, :size]
    for _ in range(size * size // 40000):
        cy, cx, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(10, 40))]
        sl = (slice(max(cy - r, 0), cy + r + 1), slice(max(cx - r, 0), cx + r + 1))
        disc = (yy[sl[0]] - cy) ** 2 + (xx[:, sl[1]] - cx) ** 2 <= r * r
        image[sl][disc] -= 45
    return (image + rng.normal(0, 6, image.shape)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--model", default="default")
    parser.add_argument("--tta", action="store_true", help="mirror-image averaging (nanofind analyze's default)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    import torch

    from nanofind.learn.inference import predict_probability, windows_for
    from nanofind.learn.model_file import load_model

    model, card = load_model(args.model)
    startup = time.perf_counter() - t0
    image = synthetic_micrograph(args.size)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    prob = predict_probability(model, card, image, pixel_size_A=None, tta=args.tta)
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"size": args.size, "architecture": card["architecture"], "threads": torch.get_num_threads(),
              "tta": args.tta, "windows": windows_for(image.shape), "startup_s": round(startup, 2),
              "segment_s": round(seconds, 2),
              "peak_rss_mb": round(peak_mb), "rss_before_segmenting_mb": round(baseline_mb),
              "particle_fraction": round(float((prob >= card["threshold"]).mean()), 4)}
    print(f"{args.size}² micrograph: {seconds:.2f} s ({result['windows']} windows), start-up {startup:.2f} s, "
          f"peak RSS {peak_mb:.0f} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
