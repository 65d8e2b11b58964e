"""Defect classes of the particles ``nanofind analyze`` finds, and their population statistics.

:func:`classify_particles` cuts every labelled particle (:func:`~nanofind.classify.crops.region_crops`)
and classifies it; :func:`population_statistics` gives the batch's figures in seed 004's form
(ch. 3): the fraction of particles on a zone axis (``fault`` or ``no_fault``, among particles that
are ``fault``, ``no_fault`` or ``misoriented``), and the fraction faulted among those on axis, each
with a 95 % bootstrap confidence interval over particles.

Given the class probabilities, the fractions are expected counts (the sums of the particles'
probabilities, "probabilistic classify and count") rather than counts of the most probable class.
Counting the most probable class turns every unsure fault into a no_fault when faults are the less
certain of the two, and the fraction follows the classifier's doubt; expected counts stay unbiased
as far as the probabilities are calibrated (docs/benchmarks.md, "Defect classes of particles").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nanofind.classify.classes import CLASS_NAMES
from nanofind.classify.crops import region_crops

#: Bootstrap resamples of the confidence intervals.
BOOTSTRAP = 2000
#: Largest pixel size (Å) at which particles are classified: the classifier knows lattice images,
#: and bright-field overview images show no columns.
LARGEST_PIXEL_A = 1.0
#: Example crops per class written per image for the report's gallery.
EXAMPLES_PER_IMAGE = 2


def should_classify(model_name: str | None, pixel_size_A: float | None) -> bool:
    """Whether an image's particles get defect classes: HRTEM images (not the bright-field model's)."""
    if model_name is not None and "lowmag" in str(model_name):
        return False
    return pixel_size_A is None or pixel_size_A <= LARGEST_PIXEL_A


def classify_particles(image: np.ndarray, labels: np.ndarray, classifier) -> tuple[list[str], np.ndarray, list]:
    """Class name, class probabilities (n, 5) and crop of every labelled particle, in label order."""
    crops = region_crops(image, labels)
    if not crops:
        return [], np.zeros((0, len(CLASS_NAMES))), []
    probabilities = classifier.predict_proba([c.image for c in crops])
    names = [CLASS_NAMES[k] for k in np.argmax(probabilities, axis=1)]
    return names, probabilities, crops


def write_examples(crops, names: list[str], probabilities: np.ndarray, folder: Path, stem: str) -> list[dict]:
    """Save the most confident :data:`EXAMPLES_PER_IMAGE` crops of each class as PNG; return their records."""
    from PIL import Image

    from nanofind._files import write_atomic

    out = []
    names = np.asarray(names)
    for name in CLASS_NAMES:
        idx = np.flatnonzero(names == name)
        best = idx[np.argsort(-probabilities[idx, CLASS_NAMES.index(name)])][:EXAMPLES_PER_IMAGE]
        for k in best:
            crop = crops[k].image
            lo, hi = np.percentile(crop, [1, 99])
            grey = np.clip((crop - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)
            path = folder / name / f"{stem}_particle{crops[k].label}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda tmp, g=grey: Image.fromarray(g).save(tmp, format="PNG"))
            out.append({"class": name, "png": str(path), "particle_id": int(crops[k].label),
                        "probability": round(float(probabilities[k, CLASS_NAMES.index(name)]), 4)})
    return out


def _ratio_ci(part: np.ndarray, whole: np.ndarray, rng: np.random.Generator, n: int) -> dict | None:
    """Σ part / Σ whole over particles with a 95 % bootstrap interval (particles resampled); None when empty.

    ``n`` is the number of particles the fraction speaks of, as reported.
    """
    if len(part) == 0 or whole.sum() <= 0:
        return None
    pick = rng.integers(0, len(part), size=(BOOTSTRAP, len(part)))
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = part[pick].sum(axis=1) / whole[pick].sum(axis=1)
    low, high = np.nanpercentile(resampled, [2.5, 97.5])
    return {"value": round(float(part.sum() / whole.sum()), 4), "ci95": [round(float(low), 4), round(float(high), 4)],
            "n": int(n)}


def population_statistics(classes, probabilities=None, seed: int = 0) -> dict:
    """Counts per class and seed 004's population fractions with 95 % bootstrap intervals.

    Parameters
    ----------
    classes : sequence of str
        One defect class per particle (entries that are not class names, such as "", are skipped).
    probabilities : array (n, 5), optional
        The particles' class probabilities in :data:`CLASS_NAMES` order, one row per entry of
        ``classes``. Given, the fractions are expected counts (sums of probabilities); otherwise
        counts of ``classes``. ``n`` of a fraction is the number of particles counted in its
        denominator by class.
    seed : int
        Seed of the bootstrap, so that the same particles give the same intervals.
    """
    names = np.asarray([str(c) for c in classes], dtype=str)
    known = np.isin(names, CLASS_NAMES)
    if probabilities is None:
        shares = (names[known][:, None] == np.asarray(CLASS_NAMES)[None, :]).astype(float)
        estimator = "counts of each particle's class"
    else:
        shares = np.asarray(probabilities, float).reshape(len(names), len(CLASS_NAMES))[known]
        estimator = "expected counts: sums of the particles' class probabilities"
    names = names[known]
    rng = np.random.default_rng(seed)
    fault, no_fault, misoriented = (shares[:, CLASS_NAMES.index(c)] for c in ("fault", "no_fault", "misoriented"))
    on_axis = fault + no_fault
    n_crystalline = int(np.isin(names, ["fault", "no_fault", "misoriented"]).sum())
    n_on_axis = int(np.isin(names, ["fault", "no_fault"]).sum())
    return {"counts": {c: int(np.sum(names == c)) for c in CLASS_NAMES},
            "on_zone_axis_fraction": _ratio_ci(on_axis, on_axis + misoriented, rng, n_crystalline),
            "faulted_fraction_on_axis": _ratio_ci(fault, on_axis, rng, n_on_axis),
            "estimator": estimator,
            "definition": "on zone axis: (fault + no_fault) / (fault + no_fault + misoriented); faulted: fault / "
                          f"(fault + no_fault), as {estimator}; 95 % intervals from {BOOTSTRAP} bootstrap resamples "
                          "of particles"}
