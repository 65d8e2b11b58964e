"""HRTEM or low-magnification bright field? A small classifier for micrographs of unknown pixel size.

Lattice fringes alone do not tell (``benchmarks/bench_imaging.py``): dense monolayers of small
particles form superlattices whose Fourier spots look like fringes, Fresnel fringes and film speckle
can too, and an HRTEM field of off-zone particles has none. What does tell is the whole picture of
a few cheap, scale-free measurements (:func:`imaging_features`):

- the shape of the power spectrum: the mean log power of Hann-windowed 256² tiles in
  :data:`SPECTRUM_BINS` log-spaced rings from 1/128 to 1/2.2 cycles per px, less its mean (HRTEM
  fields carry atomic-scale speckle and Thon rings out to a few px; bright-field images are blobs
  over white shot noise);
- the strongest lattice spot (:func:`nanofind.segment.fringes.lattice_fringes`): its log strength,
  log period and the share of tiles that show it;
- the dark blobs (:func:`nanofind.segment.scale.particle_scale`): log diameter over the fringe period,
  whether any were found, their confidence and log count;
- the intensities of the image's 2 × 2 block means, centred on their median and divided by half
  their 16th-84th percentile range (the models' scaling, without their slower median filter and
  background fit): the 1st, 5th, 50th, 95th and 99th percentiles and the skewness (dark
  mass-thickness blobs skew a bright-field image; an HRTEM field is nearly symmetric).

A logistic regression on them (standardised), fitted by ``benchmarks/bench_imaging.py`` on
simulated HRTEM and bright-field training fields and stored as plain JSON numbers in
``imaging_classifier.json`` beside this module (never a pickle), gives the probability that an
image is HRTEM. That file records what it was fitted on and its held-out accuracy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: The shipped classifier's coefficients and provenance.
CLASSIFIER_FILE = Path(__file__).with_name("imaging_classifier.json")
#: Rings of the spectrum-shape features.
SPECTRUM_BINS = 20
_FREQUENCY_RANGE = (1 / 128, 1 / 2.2)
FEATURE_NAMES = tuple([f"log_power_ring_{k}" for k in range(SPECTRUM_BINS)]
                      + ["log_fringe_strength", "log_fringe_period_px", "fringe_tile_fraction",
                         "log_blob_diameter_over_period", "blobs_found", "blob_confidence", "log1p_blobs"]
                      + [f"normalised_percentile_{q}" for q in (1, 5, 50, 95, 99)] + ["normalised_skewness"])


def _spectrum_shape(image: np.ndarray) -> np.ndarray:
    """Mean log10 power in :data:`SPECTRUM_BINS` log-spaced rings, less its mean (from the fringe search's tiles)."""
    from nanofind.segment.fringes import _tile_geometry, _tile_spectra

    spectra = _tile_spectra(image)
    tile = spectra.shape[1]
    radius = _tile_geometry(tile)[3]
    edges = np.geomspace(max(_FREQUENCY_RANGE[0], 2.0 / tile), _FREQUENCY_RANGE[1], SPECTRUM_BINS + 1)
    ring = np.digitize(radius, edges) - 1
    power = spectra.mean(axis=0)
    values = np.array([np.log10(power[ring == k].mean() + 1e-30) if np.any(ring == k) else 0.0
                       for k in range(SPECTRUM_BINS)])
    return values - values.mean()


def imaging_features(image, fringes=None, scale=None) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of a 2D micrograph (rows along y), float64.

    ``fringes`` (:class:`~nanofind.segment.fringes.FringeEvidence`) and ``scale``
    (:class:`~nanofind.segment.scale.ParticleScale` of dark blobs) are measured here when not given.
    """
    from nanofind.segment.fringes import as_image, lattice_fringes
    from nanofind.segment.scale import block_mean, particle_scale

    image = as_image(image)
    fringes = fringes or lattice_fringes(image)
    scale = scale or particle_scale(image, polarity="dark")
    period = float(fringes.period_px or 2.2)
    found = scale.diameter_px is not None
    ratio = math.log(float(scale.diameter_px) / period) if found else 0.0
    z = block_mean(image, 2) if min(image.shape) >= 16 else image
    lo, mid, hi = np.percentile(z, (16, 50, 84))
    z = (z - mid) / max((hi - lo) / 2, 1e-12)
    skewness = float(((z - z.mean()) ** 3).mean() / (z.std() ** 3 + 1e-9))
    return np.concatenate([_spectrum_shape(image),
                           [math.log10(max(fringes.strength, 1e-3)), math.log10(period), fringes.tile_fraction,
                            ratio, float(found), float(scale.confidence or 0.0), math.log1p(scale.n_blobs or 0)],
                           np.percentile(z, (1, 5, 50, 95, 99)), [skewness]])


@dataclass(frozen=True)
class ImagingClassifier:
    """A standardised logistic regression: P(HRTEM) = 1 / (1 + exp(−(w · (x − mean) / scale + b)))."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    record: dict

    def probability_hrtem(self, features: np.ndarray) -> float:
        """Probability that the image of ``features`` (:func:`imaging_features`) is an HRTEM field."""
        z = float(np.dot(self.weights, (np.asarray(features) - self.mean) / self.scale) + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    @classmethod
    def from_record(cls, record: dict) -> ImagingClassifier:
        """From the JSON record written by :meth:`to_record` (checks the feature names)."""
        if tuple(record.get("features", ())) != FEATURE_NAMES:
            raise ValueError("imaging classifier: its features are not this version's")
        return cls(np.array(record["mean"], float), np.array(record["scale"], float),
                   np.array(record["weights"], float), float(record["intercept"]), record)

    def to_record(self) -> dict:
        """JSON-able record: the numbers, the feature names, and whatever ``record`` says of its making."""
        return {**self.record, "features": list(FEATURE_NAMES), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "weights": self.weights.tolist(), "intercept": self.intercept}


@lru_cache(maxsize=1)
def shipped_classifier() -> ImagingClassifier | None:
    """The classifier shipped beside this module, or None when there is none."""
    if not CLASSIFIER_FILE.is_file():
        return None
    return ImagingClassifier.from_record(json.loads(CLASSIFIER_FILE.read_text()))


def fit_classifier(features: np.ndarray, is_hrtem: np.ndarray, record: dict | None = None,
                   regularisation: float = 0.1, sample_weight: np.ndarray | None = None) -> ImagingClassifier:
    """Fit the classifier on rows of :func:`imaging_features` and their labels (scikit-learn, balanced classes).

    ``sample_weight`` (one per row) lets a few real micrographs count as much as many simulated ones.
    """
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, float)
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    fit = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=2000)
    fit.fit((features - mean) / scale, np.asarray(is_hrtem, bool), sample_weight=sample_weight)
    return ImagingClassifier(mean, scale, fit.coef_[0].astype(float), float(fit.intercept_[0]), dict(record or {}))
