"""Wall time of ``nanofind analyze`` on many fields with ``--workers 1`` and ``--workers N``.

No simulation: the fields are made from the three bundled example micrographs (512² px, with their
pixel sizes) by the eight rotations and mirror images of the square and a faint deterministic noise
(1% of the image's spread, seeded by the field's number), written as MRC into a temporary folder.
Each worker count runs the command line as a user would (model loading and process start-up
included). The particle tables must be byte-identical; the last line is JSON with the times, the
speed-up and the machine (:func:`nanofind.learn.engine.machine_info`).

Why more workers can win on the same cores: with one worker the network's convolutions use every
core, but reading, normalising, cleaning, splitting, measuring and writing each file run on one;
with N single-threaded workers all of it overlaps. Target: ``--workers 2`` at least 1.6× faster than
``--workers 1`` on 40 fields of 512² px on 2 cores.

    python benchmarks/bench_parallel.py [--fields 40] [--workers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_SPEEDUP = 1.6


def write_fields(folder: Path, n: int) -> list[Path]:
    """``n`` fields of 512² px from the bundled examples (see the module docstring), as MRC files."""
    import mrcfile

    from nanofind.analyze.pipeline import EXAMPLES_DIR, expand_inputs
    from nanofind.io.micrograph import read_micrograph

    examples = [read_micrograph(p) for p in expand_inputs([EXAMPLES_DIR])]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        source = examples[k % len(examples)]
        image = np.rot90(source.array, (k // len(examples)) % 4)
        if (k // (4 * len(examples))) % 2:
            image = image[:, ::-1]
        noise = np.random.default_rng(k).normal(0.0, 0.01 * float(image.std()), image.shape)
        path = folder / f"field_{k:03d}.mrc"
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(image + noise, np.float32))
            mrc.voxel_size = source.pixel_size_A
        paths.append(path)
    return paths


def run(folder: Path, out: Path, workers: int) -> float:
    """Seconds of one ``nanofind analyze`` of ``folder`` with ``workers``."""
    command = [sys.executable, "-m", "nanofind", "analyze", str(folder), "-o", str(out), "--workers", str(workers),
               "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=40, help="fields of 512² px (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="worker count compared with 1 (default 2)")
    parser.add_argument("--keep", metavar="DIR", help="make the fields and outputs in DIR and keep them")
    args = parser.parse_args()

    from nanofind.learn.engine import machine_info

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(args.keep or temporary)
        write_fields(root / "fields", args.fields)
        seconds = {}
        for workers in (1, args.workers):
            seconds[workers] = run(root / "fields", root / f"out-workers{workers}", workers)
            print(f"--workers {workers}: {seconds[workers]:.1f} s for {args.fields} fields "
                  f"({seconds[workers] / args.fields:.2f} s per field)")
        tables = [(root / f"out-workers{w}" / "particles.csv").read_bytes() for w in (1, args.workers)]
        identical = tables[0] == tables[1]
    speedup = seconds[1] / seconds[args.workers]
    print(f"speed-up {speedup:.2f}× (target {TARGET_SPEEDUP}× for 2 workers); particles.csv "
          f"{'byte-identical' if identical else 'DIFFERS'}")
    print(json.dumps({"benchmark": "parallel_analyze", "fields": args.fields, "field_px": 512,
                      "seconds": {str(w): round(s, 2) for w, s in seconds.items()}, "speedup": round(speedup, 3),
                      "target_speedup": TARGET_SPEEDUP, "csv_identical": identical, "machine": machine_info()}))
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
