"""Input normalisation shared by training and inference (recorded in every model card)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter, zoom

#: Written into model cards so that inference repeats exactly what training did.
NORMALISATION = {"median_filter_px": 3, "centre": "median", "scale": "half the 16th-84th percentile range"}


def normalise(image: np.ndarray) -> np.ndarray:
    """Median-filter 3 × 3 (removes X-ray spikes, as the seeds do), then centre and scale robustly.

    The result has median 0 and a 16th–84th percentile half-range of 1 (one standard deviation
    for Gaussian statistics); it stays float32, since the seeds found 8-bit conversion harmful.
    Robust statistics keep a few saturated or dead pixels from setting the scale.
    """
    image = median_filter(np.asarray(image, np.float32), size=3, mode="reflect")
    lo, mid, hi = np.percentile(image, (16, 50, 84))
    scale = (hi - lo) / 2
    if not scale > 0:
        scale = float(image.std()) or 1.0
    return ((image - mid) / scale).astype(np.float32)


def resample(image: np.ndarray, factor: float, order: int = 1) -> np.ndarray:
    """Zoom an image by ``factor`` (> 1 enlarges); order 0 for label maps."""
    if abs(factor - 1.0) < 1e-6:
        return image
    return zoom(image, factor, order=order, mode="reflect", grid_mode=True)
