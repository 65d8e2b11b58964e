"""Burned-in annotations: what a data bar, a scale bar or a label box does to ``nanofind analyze``, with and without
:mod:`nanofind.io.annotations` (docs/benchmarks.md).

Each of the 20 labelled real micrographs is analysed as it is and with an annotation drawn on it the way
microscope software burns them in (PIL, the default bitmap font):

- ``data bar``: a 40-row white bar below the image, black text and a scale bar in it;
- ``scale bar``: a white 100 × 6 px bar and its white label on the image, lower left;
- ``label box``: a white box with a black scale bar and label on the image, lower right;
- ``beam edge``: the image lit by a round beam 1.15 times half its side (soft edge; outside, 8 % of the
  light), as a low-magnification overview with dark corners; Dice over the pixels lit to 90 % or more.

For each, ``analyze --model auto`` (unknown pixel size) runs once as shipped and once with the detector switched
off. Reported: particles found against the clean image's count, and pooled Dice of the particle mask against the
hand-drawn labels over the pixels of the original image that no annotation covers.

Then, with ``--check H5 ...``, the images of simulated datasets (``nanofind simulate`` files, which
carry no annotation) are searched as ``analyze`` searches them: every one found is a false detection.

    python benchmarks/bench_annotations.py [--real DIR] [--work DIR] [--check DATA.h5 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared/data/real-tem-np/train"
BAR_ROWS = 40


def _draw(image: np.ndarray, paint) -> np.ndarray:
    canvas = Image.fromarray(image)
    paint(ImageDraw.Draw(canvas), ImageFont.load_default())
    return np.asarray(canvas)


def annotated(image: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Variant name -> (8-bit image, bool mask of the original pixels left uncovered, on the variant's grid)."""
    h, w = image.shape
    bar = _draw(np.full((BAR_ROWS, w), 255, np.uint8), lambda d, f: (
        d.text((8, 6), "HV=200kV  Mag=30kx  2026-11-30  TEM", fill=0, font=f),
        d.rectangle([w - 130, BAR_ROWS - 14, w - 30, BAR_ROWS - 9], fill=0),
        d.text((w - 100, 6), "50 nm", fill=0, font=f)))
    barred = np.vstack([image, bar])
    keep_bar = np.zeros(barred.shape, bool)
    keep_bar[:h] = True
    scale = _draw(image, lambda d, f: (d.rectangle([20, h - 42, 119, h - 37], fill=255),
                                       d.text((50, h - 60), "20 nm", fill=255, font=f)))
    box = _draw(image, lambda d, f: (d.rectangle([w - 152, h - 72, w - 12, h - 12], fill=255),
                                     d.rectangle([w - 137, h - 32, w - 27, h - 26], fill=0),
                                     d.text((w - 107, h - 57), "20 nm", fill=0, font=f)))
    keep_box = np.ones(image.shape, bool)
    keep_box[h - 72:h - 11, w - 152:w - 11] = False
    keep_scale = np.ones(image.shape, bool)
    keep_scale[h - 62:h - 36, 18:122] = False
    yy, xx = np.indices(image.shape)
    r = np.hypot(yy + 0.5 - h / 2, xx + 0.5 - w / 2) / (min(h, w) / 2)
    light = 0.08 + 0.92 / (1 + np.exp((r - 1.15) / 0.03))
    beam = np.clip(image * light, 0, 255).astype(np.uint8)
    return {"clean": (image, np.ones(image.shape, bool)), "data bar": (barred, keep_bar),
            "scale bar": (scale, keep_scale), "label box": (box, keep_box), "beam edge": (beam, light >= 0.9)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=str(REAL), help="the 20 labelled real micrographs (img_*.png, mask_*.png)")
    parser.add_argument("--work", default="annotations-bench", help="scratch folder (emptied)")
    parser.add_argument("--check", nargs="*", default=[], help="simulated datasets whose images must show none")
    args = parser.parse_args()

    import nanofind.segment.batch as batch
    from nanofind.analyze.pipeline import AnalysisSettings, analyze_batch
    from nanofind.io.annotations import Annotations, find_annotations
    from nanofind.learn.engine import machine_info

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    real = sorted(Path(args.real).glob("img_*.png"))
    variants: dict[str, list] = {}
    for path in real:
        image = np.asarray(Image.open(path).convert("L"))
        truth = np.asarray(Image.open(path.with_name(path.name.replace("img_", "mask_"))).convert("L")) > 0
        for name, (img, keep) in annotated(image).items():
            folder = work / name.replace(" ", "_") / "in"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / path.name)
            variants.setdefault(name, []).append((path.stem, truth, keep))

    def off(image, data_bar_rows=None, **_):
        return Annotations(np.zeros(np.shape(image), bool), content=(0, 0) + tuple(np.shape(image)))

    rows = []
    counts = {}
    for detector in ("on", "off"):
        batch.find_annotations = find_annotations if detector == "on" else off
        for name, items in variants.items():
            if name == "clean" and detector == "off":
                continue
            base = work / name.replace(" ", "_")
            start = time.perf_counter()
            summary = analyze_batch([base / "in"], base / f"out-{detector}", AnalysisSettings(), progress=False)
            seconds = time.perf_counter() - start
            per = {Path(i["file"]).stem: i for i in summary["per_image"]}
            tp = fp = fn = 0
            delta = []
            for stem, truth, keep in items:
                mask = np.asarray(Image.open(base / f"out-{detector}" / "masks" / f"{stem}_mask.png")) > 0
                h, w = truth.shape
                kept = keep[:h, :w]
                pred = mask[:h, :w]
                tp += int((pred & truth & kept).sum())
                fp += int((pred & ~truth & kept).sum())
                fn += int((~pred & truth & kept).sum())
                n = per[stem]["n_particles"]
                if name == "clean":
                    counts[stem] = n
                else:
                    delta.append(n - counts[stem])
            found = sum(bool((per[s]["model"] or {}).get("annotations")) for s, _, _ in items)
            rows.append({"variant": name, "detector": detector, "images": len(items),
                         "dice": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
                         "extra_particles_mean": round(float(np.mean(delta)), 2) if delta else 0.0,
                         "images_with_extra_particles": int(np.sum(np.array(delta) > 0)) if delta else 0,
                         "annotations_found": found, "seconds": round(seconds, 1)})
    batch.find_annotations = find_annotations
    print(f"CPU: {machine_info()['cpu_model']}")
    print(f"{'variant':10s} {'detector':8s} {'Dice':>7s} {'extra particles':>16s} {'images with extra':>18s} "
          f"{'found':>6s} {'s':>6s}")
    for r in rows:
        print(f"{r['variant']:10s} {r['detector']:8s} {r['dice']:7.4f} {r['extra_particles_mean']:16.2f} "
              f"{r['images_with_extra_particles']:18d} {r['annotations_found']:6d} {r['seconds']:6.1f}")
    print(json.dumps(rows))
    for data in args.check:
        import h5py

        with h5py.File(data, "r") as f:
            images = f["image"]
            false = [i for i in range(len(images)) if find_annotations(images[i], beam_edge=True).found]
            print(f"{data}: {len(false)} of {len(images)} images with a (false) annotation {false}")


if __name__ == "__main__":
    main()
