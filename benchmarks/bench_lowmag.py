"""The low-magnification bright-field model against an Otsu threshold, on held-out sets (docs/benchmarks.md).

Sets scored, each as the model's pooled pixel Dice, Otsu's, and particle precision and recall
(one-to-one IoU > 0.5):

- ``lowmag-test``: the held-out recipe ``examples/recipes/lowmag-test.yaml`` (other shapes, materials
  and densities than training), simulated with a seed no training used (made here when missing);
- ``real fold K``: the real micrographs of cross-validation fold K, which the model named was not
  trained on (``--fold``);
- ``real fold K ×f``: the same micrographs resampled by f (particles of ~8 px to ~150 px), standing
  in for bright-field images of other magnifications; the pixel size stays unknown.

For simulated sets, whose truth includes every particle placed, Dice is also given over the
particles a person could see: by the Rose criterion, a particle is visible when its contrast
against the local background, over the pixel noise, times the square root of its area reaches 5
(:func:`visible_particles`); the pixels of the others count neither way.

Images are segmented as ``nanofind analyze --model auto`` would for an unknown pixel size: the
choice of model is checked (lattice fringes must be absent), and the particles' measured size sets
the resampling (:func:`nanofind.segment.model_choice.content_zoom`).

    python benchmarks/bench_lowmag.py [--model DIR] [--fold 0/5] [--work DIR] [-n 60] [--max-window PX]
        [--per-field]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared/data/real-tem-np/train"
#: resampling of the real fold that stands in for other magnifications
REAL_ZOOMS = (0.15, 0.35, 2.5)


#: Rose criterion: an object of contrast C over noise sigma and N pixels is seen when C / sigma * sqrt(N) >= 5
ROSE_THRESHOLD = 5.0


def visible_particles(image: np.ndarray, instance: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Pixels of the particles of ``instance`` (label map, 0 = background) that fail the Rose criterion.

    Contrast is the particle's mean intensity against the background around it (a Gaussian-weighted
    mean over 10 px of the background pixels); the noise is the pixel noise of the image (robust
    deviation of a 1 px high-pass). Returns (invisible-pixel mask, particles visible, particles).
    """
    from scipy import ndimage as ndi

    from nanofind.segment.outline import local_mean_at
    from nanofind.segment.scale import pixel_noise

    raw = np.asarray(image, np.float32)
    ids = np.unique(instance)
    ids = ids[ids > 0]
    if not len(ids):
        return np.zeros(instance.shape, bool), 0, 0
    inside = instance > 0
    at = np.nonzero(inside)
    background, ok = local_mean_at(raw, ~inside, 10.0, at)
    local_bg = np.zeros(raw.shape, np.float32)
    local_bg[at] = np.where(ok, background, np.median(raw[~inside]) if (~inside).any() else 0.0)
    contrast = np.asarray(ndi.mean(raw - local_bg, instance, ids))
    area = np.asarray(ndi.sum(np.ones_like(raw), instance, ids))
    noise = max(pixel_noise(raw), 1e-6)
    visible = np.abs(contrast) / noise * np.sqrt(area) >= ROSE_THRESHOLD
    lookup = np.zeros(int(instance.max()) + 1, bool)
    lookup[ids[~visible]] = True
    return lookup[instance], int(visible.sum()), len(ids)


def _add_losses(losses: dict, mask: np.ndarray, truth: np.ndarray, instance: np.ndarray, hidden: np.ndarray) -> None:
    """Add to ``losses`` the pixels ``mask`` gets wrong, by kind (docs/benchmarks.md, "Windows of enlarged ...").

    Missed: in particles invisible by the Rose criterion; in visible particles of which under 20 %
    was found ("whole"); within 2 px of a true outline ("rim"); else inside. False: within 2 px of
    a true particle, or farther.
    """
    from scipy import ndimage as ndi

    missed = truth & ~mask
    ids = np.arange(int(instance.max()) + 1)
    found = np.asarray(ndi.sum(mask, instance, ids)) / np.maximum(np.asarray(ndi.sum(np.ones_like(mask), instance,
                                                                                         ids)), 1)
    whole = found[instance] < 0.2
    rim = truth & ~ndi.binary_erosion(truth, iterations=2)
    false = mask & ~truth
    near = ndi.binary_dilation(truth, iterations=2)
    kinds = {"missed_invisible": missed & hidden, "missed_whole": missed & ~hidden & whole,
             "missed_rim": missed & ~hidden & ~whole & rim, "missed_inside": missed & ~hidden & ~whole & ~rim,
             "false_near": false & near, "false_far": false & ~near, "found": truth & mask}
    for kind, pixels in kinds.items():
        losses[kind] = losses.get(kind, 0) + int(pixels.sum())


def _score(runner, card, items, name, per_field=False):
    from nanofind.analyze.measure import find_particles
    from nanofind.learn.metrics import confusion, pooled_scores
    from nanofind.segment.baselines import BASELINES
    from nanofind.segment.evaluate import _true_particles
    from nanofind.segment.inference import predict_probability
    from nanofind.segment.model_choice import content_plan
    from nanofind.segment.outline import outline_mask
    from nanofind.segment.particle_metrics import particle_counts, particle_scores
    from nanofind.segment.scale import lattice_fringes

    confs = {"model": [], "otsu": []}
    seen = {"model": [], "otsu": []}  # confusions over the visible particles (simulated sets)
    visible = [0, 0]
    counts = {"model": [], "otsu": []}
    losses: dict = {}  # the model's lost pixels by kind (simulated sets, :func:`_add_losses`)
    fringes, seconds, zooms = 0, [], []
    for x in items:
        raw = x.raw
        t0 = time.perf_counter()
        fringes += bool(lattice_fringes(raw).present)
        plan = content_plan(raw, None, card)
        seconds.append(time.perf_counter() - t0)
        zooms.append(plan.wanted_zoom)
        prob = predict_probability(runner, card, raw, None, plan=plan)
        truth = x.mask > 0
        inst = _true_particles(x)
        hidden = None
        if x.instance is not None:
            hidden, n_visible, n_all = visible_particles(raw, np.asarray(x.instance))
            visible[0] += n_visible
            visible[1] += n_all
        model_mask = outline_mask(card, prob, raw)
        if hidden is not None:
            _add_losses(losses, model_mask, truth, np.asarray(x.instance), hidden)
        for method, mask in (("model", model_mask), ("otsu", BASELINES["otsu"](raw, None))):
            confs[method].append(confusion(mask, truth))
            if per_field and method == "model":
                print(f"{name} field {len(zooms) - 1}: zoom {plan.zoom:.2f}, model Dice "
                      f"{pooled_scores(confs[method][-1:])['dice']:.3f}", flush=True)
            if hidden is not None:
                seen[method].append(confusion(mask[~hidden], truth[~hidden]))
            counts[method].append(particle_counts(find_particles(mask, None), inst))
    row = {"set": name, "images": len(items), "fringes_found": fringes,
           "choice_s_median": round(float(np.median(seconds)), 3),
           "zoom_range": [round(float(min(zooms)), 2), round(float(max(zooms)), 2)]}
    for method in confs:
        d = pooled_scores(confs[method])
        p = particle_scores(counts[method])
        row[method] = {"dice": round(d["dice"], 4), "particle_precision": p["precision"],
                       "particle_recall": p["recall"], "true_particles": p["true"]}
        if seen[method]:
            row[method]["dice_visible"] = round(pooled_scores(seen[method])["dice"], 4)
    if visible[1]:
        row["visible_particles"] = visible
        row["model_lost_px"] = losses
    row["model_minus_otsu"] = round(row["model"]["dice"] - row["otsu"]["dice"], 4)
    return row


def _resampled(items, factor):
    """The labelled real images resampled by ``factor`` (area-averaged when shrinking), masks by nearest."""
    from nanofind.learn.data import LabelledImage
    from nanofind.learn.preprocess import resample

    out = []
    for x in items:
        raw = resample(np.asarray(x.raw, np.float32), factor, order=1)
        mask = (resample(x.mask.astype(np.float32), factor, order=1) >= 0.5).astype(np.uint8)
        out.append(LabelledImage(x.image, mask, None, f"{x.source}×{factor}", "real", raw))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lowmag", help="model directory (default: the shipped lowmag model)")
    parser.add_argument("--fold", default="0/5", help="real fold held out of the model's training (I/K)")
    parser.add_argument("--work", default="lowmag-test", help="where the simulated test set goes")
    parser.add_argument("-n", type=int, default=100, help="simulated test fields (default 100)")
    parser.add_argument("--seed", type=int, default=1001, help="seed of the simulated test set (default 1001)")
    parser.add_argument("--real", default=str(REAL), help="the 20 labelled real micrographs")
    parser.add_argument("--max-window", type=int, default=None,
                        help="largest window (px) of enlarged images (default: the shipped "
                             "MAX_CONTEXT_WINDOW_PX; 512 gives the plain windows used before 2026-12-01)")
    parser.add_argument("--per-field", action="store_true", help="print the model's Dice of every image")
    args = parser.parse_args()

    from nanofind.cli import main as nanofind
    from nanofind.learn.data import load_dataset, load_folder, split
    from nanofind.learn.engine import load_runner

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"lowmag-test-s{args.seed}-n{args.n}.h5"
    if not data.is_file():
        assert nanofind(["simulate", str(ROOT / "examples/recipes/lowmag-test.yaml"), "-n", str(args.n), "-o",
                         str(data), "--seed", str(args.seed), "--quiet"]) == 0
    if args.max_window is not None:
        from nanofind.segment import inference

        inference.MAX_CONTEXT_WINDOW_PX = args.max_window
    runner, card = load_runner(args.model)
    fold, folds = (int(v) for v in args.fold.split("/"))
    real = split(load_folder(args.real, keep_raw=True), (fold, folds), 0)[1]
    sets = {"lowmag-test": load_dataset(data, keep_raw=True), f"real fold {fold}": real}
    for f in REAL_ZOOMS:
        sets[f"real fold {fold} ×{f:g}"] = _resampled(real, f)
    rows = [_score(runner, card, items, name, args.per_field) for name, items in sets.items()]
    print(f"{'set':22s} {'n':>4s} {'model Dice':>10s} {'Otsu Dice':>9s} {'gain':>7s}  particles P/R (model | Otsu)"
          f"  fringes  zoom")
    for r in rows:
        m, o = r["model"], r["otsu"]
        print(f"{r['set']:22s} {r['images']:4d} {m['dice']:10.4f} {o['dice']:9.4f} {r['model_minus_otsu']:+7.4f}  "
              f"{m['particle_precision']:.3f}/{m['particle_recall']:.3f} | {o['particle_precision']:.3f}/"
              f"{o['particle_recall']:.3f}  {r['fringes_found']:3d}    {r['zoom_range']}")
    for r in rows:
        if "visible_particles" in r:
            seen, placed = r["visible_particles"]
            print(f"{r['set']}: {seen} of {placed} particles visible by the Rose criterion; over them, model Dice "
                  f"{r['model']['dice_visible']:.4f}, Otsu {r['otsu']['dice_visible']:.4f}")
            print(f"{r['set']}: model pixels by kind: {r['model_lost_px']}")
    print(json.dumps({"model": args.model, "fold": args.fold, "sets": rows}))


if __name__ == "__main__":
    main()
