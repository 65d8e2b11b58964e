"""Whole-micrograph segmentation speed and memory of a model (default: the shipped one).

A 4096 × 4096 micrograph is made from dark discs on a noisy background; the model segments it with the
default sliding window (512 px, overlap 0.25, batches of 4) on all cores, with the precision and backend
``auto`` picks for this machine unless told otherwise. Start-up (imports, model loading, the runner and
its warm-up, an ONNX export on first use) is timed separately. Peak memory is the process's maximum
resident set size.

With ``--cli`` the micrograph is written as an MRC file (0.27 Å per pixel, inside the shipped model's
working range) and ``nanofind segment`` is timed from the command line, start-up included, as a user
would run it; peak memory is then the child's. The last line is JSON, with the CPU (model and flags),
the precision and the backend used. ``NANOFIND_CPU_FLAGS=avx2,fma`` shows an AVX2-only machine's path
on any CPU (add ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` to keep PyTorch to AVX2 kernels).

    python benchmarks/bench_segment.py [--size 4096] [--model DIR] [--tta] [--precision P] [--backend B] [--cli]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def run_cli(args) -> dict:
    """``nanofind segment`` on an MRC file of the synthetic micrograph: wall time and the child's peak RSS."""
    import mrcfile

    from nanofind.learn.engine import choose_engine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"field{args.size}.mrc"
        with mrcfile.new(path) as mrc:
            mrc.set_data(synthetic_micrograph(args.size))
            mrc.voxel_size = 0.27
        command = [sys.executable, "-m", "nanofind", "segment", str(path), "-o", str(Path(tmp) / "out"),
                   "--precision", args.precision, "--backend", args.backend, "--model", args.model, "--quiet"]
        if args.tta:
            command.append("--tta")
        t = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    engine = choose_engine(args.precision, args.backend)
    print(f"nanofind segment on a {args.size}² MRC: {seconds:.2f} s wall, start-up included, peak RSS "
          f"{peak_mb:.0f} MB ({engine.describe()})")
    return {"mode": "cli", "size": args.size, "tta": args.tta, "wall_s": round(seconds, 2),
            "peak_rss_mb": round(peak_mb), "engine": engine.record()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--model", default="default")
    parser.add_argument("--tta", action="store_true", help="mirror-image averaging (segment --tta)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--cli", action="store_true", help="time `nanofind segment` from the command line")
    args = parser.parse_args()
    if args.cli:
        print(json.dumps(run_cli(args)))
        return
    t0 = time.perf_counter()
    from nanofind.learn.engine import make_runner
    from nanofind.learn.model_file import load_model
    from nanofind.segment.inference import WINDOW_PX, predict_probability, windows_for

    model, card = load_model(args.model)
    runner = make_runner(model, args.precision, args.backend, warm_up_px=WINDOW_PX)
    startup = time.perf_counter() - t0
    image = synthetic_micrograph(args.size)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    prob = predict_probability(runner, card, image, pixel_size_A=None, tta=args.tta)
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"mode": "api", "size": args.size, "architecture": card.architecture, "tta": args.tta,
              "windows": windows_for(image.shape), "startup_s": round(startup, 2), "segment_s": round(seconds, 2),
              "peak_rss_mb": round(peak_mb), "rss_before_segmenting_mb": round(baseline_mb),
              "particle_fraction": round(float((prob >= card.threshold).mean()), 4),
              "engine": runner.engine.record()}
    print(f"{args.size}² micrograph: {seconds:.2f} s ({result['windows']} windows), start-up {startup:.2f} s, "
          f"peak RSS {peak_mb:.0f} MB ({runner.engine.describe()})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
