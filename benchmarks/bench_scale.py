"""Accuracy and speed of the scale and lattice-fringe estimates (nanofind.segment.scale).

    .venv/bin/python benchmarks/bench_scale.py [DATASET.h5 ...]

(a) The 20 real bright-field micrographs in /work/shared/data/real-tem-np/train: particle diameter
    against the median equivalent diameter of the connected components of mask_*.png (all of them,
    and only those not cut by the image edge and at least 10 px across), and fringe detection.
(b) Simulated HRTEM fields: the bundled examples and the nanofind datasets given on the command
    line (default: /tmp/v2/test-ms.h5 and /tmp/bench/analyze-test.h5 where they exist): fringe
    detection rate, overall and for fields with at least one particle on a zone axis.
(c) Low-magnification fields of other scales: the real images zoomed by 0.15, 0.5, 2 and 3
    (scipy.ndimage.zoom, cubic), truth scaled alike.
Then the fringe strength reached by noise alone, and times on one thread for 512² and 4096².
Runs in about a minute on one core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

from nanofind.learn.engine import timed  # noqa: E402
from nanofind.segment.fringes import FRINGE_THRESHOLD, lattice_fringes  # noqa: E402
from nanofind.segment.scale import particle_scale  # noqa: E402

REAL = Path("/work/shared/data/real-tem-np/train")
EXAMPLES = Path(__file__).resolve().parents[1] / "src/nanofind/analyze/examples"
DEFAULT_DATASETS = [Path("/tmp/v2/test-ms.h5"), Path("/tmp/bench/analyze-test.h5")]
ZOOMS = (0.15, 0.5, 2.0, 3.0)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def mask_diameters(mask: np.ndarray) -> tuple[float, float]:
    """Median equivalent diameter (px) of all components, and of interior ones ≥ 10 px across."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return float("nan"), float("nan")
    diameters = np.sqrt(4.0 * np.bincount(labels.ravel())[1:] / np.pi)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    interior = np.ones(n, bool)
    interior[edge[edge > 0] - 1] = False
    inner = diameters[interior & (diameters >= 10)]
    return float(np.median(diameters)), float(np.median(inner)) if inner.size else float("nan")


def summary(ratios) -> str:
    ratios = np.asarray(ratios, float)
    found = ratios[np.isfinite(ratios)]
    if found.size == 0:
        return "no estimates"
    worst = found[np.argmax(np.abs(np.log(found)))]
    return (f"median {np.median(found):.3f}  min {found.min():.3f}  max {found.max():.3f}  worst {worst:.3f}  "
            f"within 20 %: {np.mean(np.abs(found - 1) <= 0.2):.0%}  missing {np.count_nonzero(~np.isfinite(ratios))}")


def real_images():
    for image_path in sorted(REAL.glob("img_*.png")):
        mask_path = REAL / image_path.name.replace("img_", "mask_")
        yield image_path.stem, np.asarray(Image.open(image_path), float), np.asarray(Image.open(mask_path)) > 0


def bench_real(images) -> None:
    print("\n(a) real bright-field micrographs (512², pixel size unknown)")
    print(f"{'image':8} {'truth':>6} {'interior':>8} {'estimate':>8} {'ratio':>6} {'ratio_int':>9} {'n':>3} "
          f"{'conf':>5} {'fringes':>8} {'period':>6}")
    ratios, ratios_interior, present = [], [], []
    for name, image, mask in images:
        truth, interior = mask_diameters(mask)
        scale, fringes = particle_scale(image), lattice_fringes(image)
        estimate = scale.diameter_px if scale.diameter_px is not None else float("nan")
        ratios.append(estimate / truth)
        ratios_interior.append(estimate / interior)
        present.append(fringes.present)
        print(f"{name:8} {truth:6.1f} {interior:8.1f} {estimate:8.1f} {ratios[-1]:6.2f} {ratios_interior[-1]:9.2f} "
              f"{scale.n_blobs:3d} {scale.confidence:5.2f} {fringes.strength:8.1f} {fringes.period_px:6.2f}")
    print(f"diameter / median of all components:      {summary(ratios)}")
    print(f"diameter / median of interior components: {summary(ratios_interior)}")
    print(f"fringes present (threshold {FRINGE_THRESHOLD:g}): {sum(present)}/{len(present)} "
          "(several of these images do show lattice fringes in some particles, period ~4 px)")


def on_zone(sample) -> bool:
    records = sample.particles or []
    if records and "on_zone_axis" in records[0]:
        return any(record.get("on_zone_axis") for record in records)
    specs = sample.params.get("scene", {}).get("spec", {}).get("particles", [])
    return any(spec.get("tilt_deg", 0) == 0 and spec.get("zone_axis") != "random" for spec in specs)


def bench_hrtem(datasets) -> None:
    from nanofind.datasets.store import DatasetReader
    from nanofind.io import read_micrograph

    print("\n(b) simulated HRTEM fields")
    rows = []
    for path in sorted(EXAMPLES.glob("example_*")):
        if path.suffix.lower() in (".mrc", ".tif", ".tiff"):
            micrograph = read_micrograph(path)
            image = micrograph.array if micrograph.array.ndim == 2 else micrograph.array[0]
            rows.append((path.name, image, micrograph.pixel_size_A, True, None))
    for dataset in datasets:
        with DatasetReader(dataset) as reader:
            for k in range(len(reader)):
                sample = reader.sample(k)
                truth = mask_diameters(np.asarray(sample.mask) > 0)[0]
                rows.append((f"{dataset.name}#{k}", np.asarray(sample.image, float), sample.params["pixel_size_A"],
                             on_zone(sample), truth))
    print(f"{'field':22} {'px_A':>5} {'on-zone':>7} {'strength':>9} {'tiles':>5} {'period_A':>8} {'present':>7} "
          f"{'diam':>6} {'truth':>6}")
    present, present_on_zone, strengths = [], [], []
    for name, image, pixel_size, zone, truth in rows:
        fringes = lattice_fringes(image, pixel_size)
        scale = particle_scale(image)
        present.append(fringes.present)
        strengths.append(fringes.strength)
        if zone:
            present_on_zone.append(fringes.present)
        diameter = scale.diameter_px if scale.diameter_px is not None else float("nan")
        print(f"{name:22} {pixel_size:5.2f} {str(zone):>7} {fringes.strength:9.1f} {fringes.tile_fraction:5.2f} "
              f"{fringes.period_A:8.2f} {str(fringes.present):>7} {diameter:6.1f} "
              f"{truth if truth is not None else float('nan'):6.1f}")
    print(f"fringes present: {np.mean(present):.0%} of {len(present)} fields; "
          f"{np.mean(present_on_zone):.0%} of {len(present_on_zone)} with a particle on a zone axis; "
          f"median strength {np.median(strengths):.1f}")


def bench_zoomed(images) -> None:
    print("\n(c) real micrographs zoomed (scipy.ndimage.zoom, cubic): other particle sizes")
    for zoom in ZOOMS:
        ratios, ratios_interior, present, shapes, times = [], [], [], set(), []
        for _, image, mask in images:
            truth, interior = mask_diameters(mask)
            zoomed = ndimage.zoom(image, zoom)
            shapes.add(zoomed.shape)
            start = time.perf_counter()
            scale = particle_scale(zoomed)
            times.append(time.perf_counter() - start)
            estimate = scale.diameter_px if scale.diameter_px is not None else float("nan")
            ratios.append(estimate / (truth * zoom))
            ratios_interior.append(estimate / (interior * zoom))
            present.append(lattice_fringes(zoomed).present)
        print(f"zoom {zoom:4}: shape {sorted(shapes)[0]}, truth ≈ {zoom * 56:.0f} px, particle_scale "
              f"{1e3 * np.median(times):.0f} ms median")
        print(f"   vs all components:      {summary(ratios)}")
        print(f"   vs interior components: {summary(ratios_interior)}")
        print(f"   fringes present: {sum(present)}/{len(present)}")


def bench_noise() -> None:
    print("\nfringe strength from noise alone (max over 4 draws; threshold "
          f"{FRINGE_THRESHOLD:g}), and particle_scale on it")
    rng = np.random.default_rng(0)
    for side in (256, 512, 1024, 4096):
        draws = 4 if side < 4096 else 1
        white = [rng.normal(size=(side, side)) for _ in range(draws)]
        blurred = [ndimage.gaussian_filter(rng.normal(size=(side, side)), 1.5) for _ in range(draws)]
        strength_white = max(lattice_fringes(image).strength for image in white)
        strength_blurred = max(lattice_fringes(image).strength for image in blurred)
        blobs = sum(particle_scale(image).diameter_px is not None for image in white + blurred)
        print(f"{side:5}²: white {strength_white:5.2f}  correlated (σ=1.5 px) {strength_blurred:5.2f}  "
              f"diameters reported for {blobs}/{2 * draws} noise images")


def bench_time(images) -> None:
    print("\ntimes (best of repeats, one thread)")
    image = images[3][1]
    tiled = np.tile(image, (8, 8))
    zoomed = ndimage.zoom(image, 8.0, order=1)
    for name, array, repeats in (("512² real", image, 10), ("4096² tiled (55 px particles)", tiled, 3),
                                 ("4096² zoomed ×8 (450 px particles)", zoomed, 3)):
        t_scale = timed(particle_scale, array, repeats)
        t_fringes = timed(lattice_fringes, array, repeats)
        print(f"{name:36} particle_scale {1e3 * t_scale:6.1f} ms  lattice_fringes {1e3 * t_fringes:6.1f} ms  "
              f"together {1e3 * (t_scale + t_fringes):6.1f} ms")


def main(argv: list[str]) -> None:
    start = time.perf_counter()
    print(f"CPU: {cpu_name()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
    datasets = [Path(arg) for arg in argv] or [path for path in DEFAULT_DATASETS if path.exists()]
    images = list(real_images())
    bench_real(images)
    bench_hrtem(datasets)
    bench_zoomed(images)
    bench_noise()
    bench_time(images)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
