"""A rotation-invariant descriptor for the shortlist: the radial profile of the whitened power spectrum.

The power spectrum of an atomic-resolution image does not move with the image and turns with it;
summed over rings of equal spatial frequency it does not depend on the rotation at all. Its peaks
(the lattice's reflections) sit at spatial frequencies fixed by the structure, however blurred the
columns are (the blur only dims the far rings, and the profile is whitened against that). The
profile is sampled on a logarithmic frequency grid, so that a pixel-size error is a shift along the
grid: a library entry (in 1/Å) and a query (in cycles/px) are compared at a range of assumed pixel
sizes by sliding one over the other.

Whitening: each ring's power less its background (the ring's median times its pixels: noise is
flat, spots are few) is divided by the profile's smooth envelope (the blur of the columns dims the
far rings), and the square root taken, so that weak reflections count beside strong ones.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

#: The descriptor's spatial-frequency range, 1/Å: from periods of 8 Å to 0.95 Å.
K_MIN_INV_A = 0.125
K_MAX_INV_A = 1.05
#: Highest spatial frequency a profile uses, cycles/px (below Nyquist, where pixels blur spots).
MAX_CYCLES_PER_PX = 0.45
#: The coarsest pixel size at which the whole descriptor still fits below MAX_CYCLES_PER_PX, Å.
COARSEST_PIXEL_A = MAX_CYCLES_PER_PX / K_MAX_INV_A
#: Log-frequency step of the grid (0.5 %: well inside the ±3 % pixel-size error of a calibration).
LOG_STEP = 0.005
#: Width of the smoothing (grid points) that estimates the spectrum's envelope.
ENVELOPE_BINS = 40
#: Grid points of a descriptor.
BINS = int(math.floor(math.log(K_MAX_INV_A / K_MIN_INV_A) / LOG_STEP)) + 1
#: Side of the field the spectra are taken over, Å (library entries are rendered this wide).
FIELD_A = 51.2


def spectrum_profile(image: np.ndarray, f_min: float, bins: int, log_step: float = LOG_STEP) -> np.ndarray:
    """The whitened ring profile of the image's power spectrum at f_k = f_min·exp(k·log_step), cycles/px.

    Frequencies beyond MAX_CYCLES_PER_PX (near Nyquist) are NaN.
    """
    x = np.asarray(image, dtype=np.float64)
    x = (x - x.mean()) * np.outer(np.hanning(x.shape[0]), np.hanning(x.shape[1]))
    n = max(x.shape)
    power = np.abs(sfft.rfft2(x, s=(n, n))) ** 2
    fy = sfft.fftfreq(n)[:, None]
    fx = sfft.rfftfreq(n)[None, :]
    radius_px = np.hypot(fy, fx) * n  # in frequency-grid pixels
    ring = np.round(radius_px).astype(np.intp).ravel()
    values = power.ravel()
    # a ring's median is its background; the excess above it, relative to it, summed over the ring
    order = np.lexsort((values, ring))
    ring_sorted, values_sorted = ring[order], values[order]
    starts = np.searchsorted(ring_sorted, np.arange(ring_sorted.max() + 2))
    count = np.diff(starts)
    median = np.zeros(len(count))
    filled = count > 0
    mid = starts[:-1] + count // 2
    median[filled] = values_sorted[mid[filled]]
    # the rings' power above their background (noise is flat: a ring's median holds it)
    total = np.bincount(ring, weights=values, minlength=len(count))
    linear = ndi.gaussian_filter1d(np.maximum(total - median * count, 0.0), 0.7)
    grid = f_min * np.exp(np.arange(bins) * log_step) * n
    profile = np.interp(grid, np.arange(len(linear)), linear, right=0.0)
    # divided by its smooth envelope (the columns' blur and the detector dim far rings), square-rooted
    envelope = ndi.gaussian_filter1d(profile, ENVELOPE_BINS, mode="nearest")
    profile = np.sqrt(profile / (envelope + 1e-3 * max(float(envelope.max()), 1e-300)))
    profile[grid > MAX_CYCLES_PER_PX * n] = np.nan
    return profile


def entry_descriptor(image: np.ndarray, pixel_size_A: float) -> np.ndarray:
    """The descriptor of a library image, on the fixed grid of :data:`BINS` points from K_MIN_INV_A."""
    profile = spectrum_profile(image, K_MIN_INV_A * pixel_size_A, BINS)
    return _standardised(np.nan_to_num(profile))


def _standardised(profile: np.ndarray) -> np.ndarray:
    p = profile - profile.mean(axis=-1, keepdims=True)
    return p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)


def field_crop(image: np.ndarray, pixel_size_A: float) -> np.ndarray:
    """The central square of at most :data:`FIELD_A` (so that spot widths match the library's)."""
    side = int(round(FIELD_A / pixel_size_A))
    h, w = image.shape
    if side >= min(h, w):
        return image
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def scale_scores(query: np.ndarray, pixel_size_A: float, descriptors: np.ndarray, *,
                 scale_range: tuple[float, float] = (0.95, 1.05)) -> tuple[np.ndarray, np.ndarray]:
    """How well each library descriptor fits the query at its best pixel size within ``scale_range``.

    Parameters
    ----------
    query : (rows, cols) array
        The query image at its own sampling.
    pixel_size_A : float
        The query's nominal pixel size, Å (for an unknown one: a guess, with a wide ``scale_range``).
    descriptors : (entries, BINS) array
        Standardised library descriptors.
    scale_range : (float, float)
        Factors on ``pixel_size_A`` to try.

    Returns
    -------
    scores : (entries,) array
        Best Pearson correlation of each entry's profile with the query's, −1…1.
    pixel_sizes_A : (entries,) array
        The pixel size at which each entry fits best, Å.
    """
    lo, hi = scale_range
    steps_down = int(math.ceil(math.log(1 / lo) / LOG_STEP))
    steps_up = int(math.ceil(math.log(hi) / LOG_STEP))
    # assumed pixel size p = pixel_size_A·exp(s·LOG_STEP): the entry's k (1/Å) sits at f = k·p cycles/px
    f0 = K_MIN_INV_A * pixel_size_A * math.exp(-steps_down * LOG_STEP)
    profile = spectrum_profile(field_crop(query, pixel_size_A), f0, BINS + steps_down + steps_up + 1)
    best = np.full(len(descriptors), -np.inf)
    best_shift = np.zeros(len(descriptors), dtype=np.intp)
    for s in range(-steps_down, steps_up + 1):
        start = s + steps_down
        window = profile[start:start + BINS]
        if len(window) < BINS:
            continue
        window = np.nan_to_num(window)
        score = descriptors @ _standardised(window)
        better = score > best
        best[better], best_shift[better] = score[better], s
    return best, pixel_size_A * np.exp(best_shift * LOG_STEP)
