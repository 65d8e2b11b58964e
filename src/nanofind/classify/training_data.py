"""Labelled crops from simulated datasets, cut as ``nanofind analyze`` cuts particles.

For each simulated micrograph the shipped segmentation model finds the particles exactly as in
``nanofind analyze`` (:func:`nanofind.analyze.pipeline.analyze_frame`), :func:`region_crops` cuts
them, and each region takes its class from the ground truth:

- a region holding most of two or more particles (at least half of each) is an ``agglomerate``;
- a region matching one particle (IoU ≥ 0.5) takes that particle's class
  (:func:`~nanofind.classify.classes.particle_class`); particles cut by the image edge are skipped;
- a region with under 10 % of its pixels on particles is ``empty`` (a false detection).

Because the model splits most touching particles, agglomerates are rare among predicted regions;
every cluster of touching particles is therefore also cut as one region (the union of its
footprints, what a failed split leaves), and ``empty`` crops are added from the carbon around the
particles (windows without particle pixels, as large as the image's particle crops).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nanofind.classify.classes import CLASS_NAMES, particle_class
from nanofind.classify.crops import MIN_CROP_PX, crop_window, cut, region_crops

#: Minimum IoU of a predicted region with one particle to take its class.
MATCH_IOU = 0.5
#: Fraction of a particle inside a region that counts it as held by the region.
HELD_FRACTION = 0.5
#: Background crops cut per image.
EMPTY_PER_IMAGE = 1


def _match(region: np.ndarray, instance: np.ndarray, areas: np.ndarray) -> tuple[list[int], float, float]:
    """Particles held by a region, its best IoU with one particle, and its fraction on particles."""
    ids, overlap = np.unique(instance[region], return_counts=True)
    on = ids > 0
    ids, overlap = ids[on], overlap[on]
    size = region.sum()
    held = [int(i) for i, o in zip(ids, overlap, strict=True) if o >= HELD_FRACTION * areas[i]]
    iou = max((o / (size + areas[i] - o) for i, o in zip(ids, overlap, strict=True)), default=0.0)
    return held, float(iou), float(overlap.sum() / max(size, 1))


def labelled_regions(image: np.ndarray, labels: np.ndarray, instance: np.ndarray, records: list[dict],
                     spec_particles: list[dict]) -> Iterator[tuple[np.ndarray, str, dict]]:
    """(crop, class, facts) for every predicted region whose class is clear."""
    by_id = {r["id"]: r for r in records}
    areas = np.bincount(instance.ravel(), minlength=int(instance.max()) + 1)
    ny, nx = labels.shape
    for crop in region_crops(image, labels):
        region = labels == crop.label
        rows, cols = np.nonzero(region)
        if rows.min() == 0 or cols.min() == 0 or rows.max() == ny - 1 or cols.max() == nx - 1:
            continue  # particles cut by the image edge are not classified
        held, iou, on_particles = _match(region, instance, areas)
        if len(held) >= 2:
            yield crop.image, "agglomerate", {"source": "predicted", "particles": len(held),
                                              "material": by_id.get(held[0], {}).get("material", "")}
        elif iou >= MATCH_IOU and len(held) == 1 and held[0] in by_id:
            record = by_id[held[0]]
            if record.get("cut_by_edge"):
                continue
            spec = spec_particles[record["object_id"]] if record.get("object_id", -1) < len(spec_particles) else None
            name = particle_class(record, spec)
            if name is not None:
                yield crop.image, name, {"source": "predicted", "particles": 1, "material": record.get("material", "")}
        elif on_particles < 0.1:
            yield crop.image, "empty", {"source": "predicted", "particles": 0, "material": ""}


def cluster_regions(image: np.ndarray, instance: np.ndarray, records: list[dict]) -> Iterator[tuple[np.ndarray, dict]]:
    """One crop per cluster of touching particles wholly inside the image (what an unsplit region shows)."""
    by_id = {r["id"]: r for r in records}
    seen: set[int] = set()
    for r in records:
        if not r.get("agglomerate") or r["id"] in seen:
            continue
        group = {r["id"], *[i for i in r.get("touching_ids", []) if i in by_id]}
        seen |= group
        if len(group) < 2 or any(by_id[i].get("cut_by_edge") for i in group):
            continue
        rows, cols = np.nonzero(np.isin(instance, list(group)))
        top, left, side = crop_window((rows.min(), cols.min(), rows.max() + 1, cols.max() + 1), instance.shape)
        yield cut(image, top, left, side), {"source": "cluster", "particles": len(group),
                                           "material": by_id[r["id"]].get("material", "")}


def background_crops(image: np.ndarray, instance: np.ndarray, sides: list[int], rng: np.random.Generator,
                     count: int = EMPTY_PER_IMAGE) -> Iterator[np.ndarray]:
    """Crops of carbon only: windows without particle pixels, with sides drawn from ``sides``."""
    ny, nx = instance.shape
    occupied = np.cumsum(np.cumsum(instance > 0, axis=0), axis=1)
    padded = np.pad(occupied, ((1, 0), (1, 0)))
    made = 0
    for _ in range(50 * count):
        if made >= count:
            return
        side = int(rng.choice(sides)) if sides else int(rng.integers(MIN_CROP_PX, 160))
        if side >= min(ny, nx):
            continue
        top, left = int(rng.integers(0, ny - side)), int(rng.integers(0, nx - side))
        inside = (padded[top + side, left + side] - padded[top, left + side] - padded[top + side, left]
                  + padded[top, left])
        if inside == 0:
            made += 1
            yield cut(image, top, left, side)


def write_crops(datasets: list[str | Path], out_dir: str | Path, *, seed: int = 0, progress=None,
                classes: list[str] | None = None) -> dict:
    """Cut labelled crops from simulated datasets into ``out_dir/<class>/`` (float32 TIFF) and ``crops.csv``.

    ``classes`` keeps only crops of those classes (for a recipe made to supply one class, such as
    the agglomerates of ``classify-train-agglomerates.yaml``, without shifting the others' mix).
    Returns the number of crops per class.
    """
    import tifffile

    from nanofind.analyze.pipeline import AnalysisSettings, analyze_frame
    from nanofind.datasets.store import DatasetReader
    from nanofind.learn.engine import load_runner

    out = Path(out_dir)
    for name in CLASS_NAMES:
        (out / name).mkdir(parents=True, exist_ok=True)
    runner, card = load_runner(None)
    settings = AnalysisSettings()
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(CLASS_NAMES, 0)
    rows = []
    for path in datasets:
        reader = DatasetReader(path)
        for i in range(len(reader)):
            sample = reader.sample(i)
            instance = reader.instance(i)
            records = reader.particles(i)
            spec = ((sample.params.get("scene") or {}).get("spec") or {}).get("particles", [])
            pixel = float(sample.params["pixel_size_A"])
            _, labels, _ = analyze_frame(runner, card, sample.image, pixel, settings)
            found = [(c, name, facts) for c, name, facts in labelled_regions(sample.image, labels, instance, records,
                                                                                spec)]
            found += [(c, "agglomerate", facts) for c, facts in cluster_regions(sample.image, instance, records)]
            sides = [c.shape[0] for c, _, _ in found]
            found += [(c, "empty", {"source": "background", "particles": 0, "material": ""})
                      for c in background_crops(sample.image, instance, sides, rng)]
            for k, (crop, name, facts) in enumerate(found):
                if classes is not None and name not in classes:
                    continue
                file = out / name / f"{Path(path).stem}_{i:05d}_{k:02d}.tif"
                tifffile.imwrite(file, crop.astype(np.float32))
                counts[name] += 1
                rows.append({"file": str(file.relative_to(out)), "class": name, "dataset": str(path), "sample": i,
                             "group": sample.params.get("group", i),
                             "pixel_size_A": pixel, "dose_e_per_A2": sample.params.get("dose_e_per_A2"),
                             "side_px": crop.shape[0], **facts})
            if progress is not None:
                progress()
    with open(out / "crops.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["file", "class"])
        writer.writeheader()
        writer.writerows(rows)
    return counts
