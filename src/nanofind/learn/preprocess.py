"""Input normalisation shared by training and inference (its settings are recorded in every model card)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter, zoom

from nanofind.learn.card import Normalisation

#: The normalisation of new models (3 px median, flattened background), written into their cards so
#: that inference repeats exactly what training did.
STANDARD_NORMALISATION = Normalisation()
#: Blocks per side over which the illumination background is fitted.
BACKGROUND_BLOCKS = 48


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def median3x3(image: np.ndarray) -> np.ndarray:
    """3 × 3 median filter with edges mirrored (equal to ``scipy.ndimage.median_filter(size=3)``).

    Uses the exact sorted-columns identity: the median of nine values is the median of (the
    largest column minimum, the median of column medians, the smallest column maximum), which
    needs only elementwise minima and maxima, about 3× faster than scipy on large micrographs.
    """
    p = np.pad(np.asarray(image), 1, mode="symmetric")
    a, b, c = p[:-2], p[1:-1], p[2:]
    ab_lo, ab_hi = np.minimum(a, b), np.maximum(a, b)
    lo, hi = np.minimum(ab_lo, c), np.maximum(ab_hi, c)
    mid = np.maximum(ab_lo, np.minimum(ab_hi, c))
    column_min_max = np.maximum(np.maximum(lo[:, :-2], lo[:, 1:-1]), lo[:, 2:])
    column_max_min = np.minimum(np.minimum(hi[:, :-2], hi[:, 1:-1]), hi[:, 2:])
    return _median3(column_min_max, _median3(mid[:, :-2], mid[:, 1:-1], mid[:, 2:]), column_max_min)


def _tukey_weights(residual: np.ndarray) -> np.ndarray:
    scale = 1.4826 * np.median(np.abs(residual - np.median(residual)))
    if not scale > 0:
        return np.ones_like(residual)
    u = residual / (4.685 * scale)
    return np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)


def background_surface(image: np.ndarray, blocks: int = BACKGROUND_BLOCKS, iterations: int = 12) -> np.ndarray:
    """Slowly varying illumination of a micrograph: a quadratic surface fitted robustly, (H, W) float32.

    The image is averaged in about ``blocks`` × ``blocks`` blocks and a second-order polynomial in
    x and y is fitted by iteratively reweighted least squares with Tukey's biweight, so that
    particles (a minority of blocks far from the surface) do not pull it. It models an uneven or
    tilted illumination, which otherwise looks like the darker mass-thickness contrast of a particle.
    """
    image = np.asarray(image, np.float32)
    h, w = image.shape
    b = max(1, min(h, w) // blocks)
    ny, nx = h // b, w // b
    means = image[:ny * b, :nx * b].reshape(ny, b, nx, b).mean(axis=(1, 3), dtype=np.float64).ravel()

    def terms(y: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        return [np.ones_like(x * y), x, y, x * x, x * y, y * y]

    # coordinates of block centres and of pixels on the same scale, -1..1 across the image
    yc, xc = np.meshgrid((np.arange(ny) + 0.5) * b, (np.arange(nx) + 0.5) * b, indexing="ij")
    design = np.stack([t.ravel() for t in terms(2 * yc / h - 1, 2 * xc / w - 1)], axis=1)
    weights = np.ones(len(means))
    coef = np.zeros(design.shape[1])
    for _ in range(iterations):
        root = np.sqrt(weights)[:, None]
        coef = np.linalg.lstsq(design * root, means * root[:, 0], rcond=None)[0]
        new = _tukey_weights(means - design @ coef)
        if new.sum() < design.shape[1] or np.allclose(new, weights, atol=1e-4):
            break
        weights = new
    y = (2 * (np.arange(h, dtype=np.float32) + 0.5) / h - 1)[:, None]
    x = (2 * (np.arange(w, dtype=np.float32) + 0.5) / w - 1)[None, :]
    surface = np.zeros((h, w), np.float32)
    for c, t in zip(coef, terms(y, x), strict=True):
        surface += np.float32(c) * t
    return surface


def median_filtered(image: np.ndarray, size_px: int | None) -> np.ndarray:
    """``image`` median-filtered over ``size_px`` × ``size_px`` pixels (odd; None or 1: unchanged), edges mirrored."""
    if not size_px or size_px == 1:
        return image
    if size_px == 3:
        return median3x3(image)
    return median_filter(image, size=size_px, mode="reflect")


def normalise(image: np.ndarray, normalisation: Normalisation | None = None) -> np.ndarray:
    """Prepare an image for a network as ``normalisation`` says (None: :data:`STANDARD_NORMALISATION`), float32.

    The median filter removes X-ray spikes, as the seeds do. Flattening subtracts
    :func:`background_surface`, the uneven illumination. The result has median 0 and a 16th–84th
    percentile half-range of 1 (one standard deviation for Gaussian statistics); it stays float32,
    since the seeds found 8-bit conversion harmful. Robust statistics keep a few saturated or dead
    pixels from setting the scale.
    """
    settings = STANDARD_NORMALISATION if normalisation is None else normalisation
    image = median_filtered(np.asarray(image, np.float32), settings.median_filter_px)
    if settings.flatten_background:
        image = image - background_surface(image)
    # robust statistics from about a million pixels are as good as from all of them
    step = max(1, int(np.sqrt(image.size / 1e6)))
    lo, mid, hi = np.percentile(image[::step, ::step], (16, 50, 84))
    scale = (hi - lo) / 2
    if not scale > 0:
        scale = float(image.std()) or 1.0
    return ((image - mid) / scale).astype(np.float32)


def resample(image: np.ndarray, factor: float, order: int = 1) -> np.ndarray:
    """Zoom an image by ``factor`` (> 1 enlarges); order 0 for label maps.

    Shrinking by more than 2× (``factor`` < 0.5) first smooths the image with a Gaussian of
    σ = (1/factor − 1)/2 px, so that each new pixel averages the old ones it covers instead of
    sampling every n-th (which would keep the full noise of a low-magnification micrograph, and
    alias its fringes). Milder shrinking, as the HRTEM scale guard asks, is interpolated as it is.
    """
    if abs(factor - 1.0) < 1e-6:
        return image
    if factor < 0.5 and order > 0:
        from scipy.ndimage import gaussian_filter

        image = gaussian_filter(np.asarray(image, np.float32), (1 / factor - 1) / 2, mode="reflect")
    return zoom(image, factor, order=order, mode="reflect", grid_mode=True)
