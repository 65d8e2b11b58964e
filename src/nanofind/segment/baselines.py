"""Classical segmentation baselines for bright-field HRTEM of nanoparticles on amorphous carbon.

The comparison methods of seed 004, chapter 3 ("Alternate Methods for Segmentation"): Otsu
thresholding of intensity, and Fourier filtering with an annulus at the lattice frequencies
followed by smoothing and thresholding; plus a local-spectrum (Bragg peak) detector. They use
two facts about such images: a particle scatters more than the thin carbon film, so it is
darker in bright field; and a crystalline particle carries lattice fringes, i.e. sharp peaks
in its local spectrum at spatial frequencies 1/d of its lattice planes, whereas the amorphous
carbon gives only a smooth, ring-like spectrum.

Every baseline has the call signature ``(image, pixel_size_A=None) -> bool mask`` (see
:data:`BASELINES`), with rows along y and True marking particle pixels; method settings are
keyword arguments with documented defaults.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

#: Default lattice band in Å⁻¹: d-spacings 1.33–4 Å, which covers the strong low-index fringes of
#: fcc metals (Au/Pt/Pd {111} ≈ 2.3 Å, {200} ≈ 2.0 Å, {220} ≈ 1.4 Å) and of CdSe ({100} ≈ 3.7 Å,
#: {002} ≈ 3.5 Å, {110} ≈ 2.15 Å).
LATTICE_BAND_INV_A = (0.25, 0.75)
#: Default band as fractions of the Nyquist frequency (0.5 cycles/pixel) when the pixel size is
#: unknown: fringe periods from 2.2 to 16.7 pixels, i.e. the band above at pixel sizes ≈ 0.2–0.8 Å.
LATTICE_BAND_NYQUIST = (0.12, 0.9)


def _as_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"image must be 2D (rows along y), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("image contains non-finite values")
    return array


def lattice_band(pixel_size_A: float | None = None, band_inv_A: tuple[float, float] = LATTICE_BAND_INV_A,
                 band_nyquist: tuple[float, float] = LATTICE_BAND_NYQUIST) -> tuple[float, float]:
    """Lattice band ``(q_low, q_high)`` in cycles per pixel.

    With a pixel size (Å), ``band_inv_A`` (Å⁻¹) is converted: q [cycles/pixel] = q [Å⁻¹] × pixel
    size. Without one, ``band_nyquist`` (fractions of Nyquist, 0.5 cycles/pixel) is used. The
    upper edge may exceed Nyquist along an axis (the spectrum's corners reach 0.71 cycles/pixel).
    """
    if pixel_size_A is None:
        low, high = 0.5 * band_nyquist[0], 0.5 * band_nyquist[1]
    else:
        if pixel_size_A <= 0:
            raise ValueError(f"pixel_size_A must be positive, got {pixel_size_A}")
        low, high = band_inv_A[0] * pixel_size_A, band_inv_A[1] * pixel_size_A
    if not 0 < low < high:
        raise ValueError(f"lattice band must satisfy 0 < low < high, got ({low}, {high}) cycles/pixel")
    if low >= 0.5:
        raise ValueError(f"lattice band starts at {low:.3f} cycles/pixel, beyond Nyquist (0.5): "
                         f"the pixel size {pixel_size_A} Å is too coarse to resolve these fringes")
    return low, high


def _clean(mask: np.ndarray, opening_px: float, min_area_px: float) -> np.ndarray:
    """Opening by a disc of ``opening_px`` (whole pixels), then small components out and holes filled."""
    if opening_px >= 1:
        mask = ndimage.binary_opening(mask, structure=disk(int(round(opening_px)), dtype=bool))
    if min_area_px > 0 and mask.any():
        labels, n = ndimage.label(mask)
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        keep = areas >= min_area_px
        keep[0] = False
        mask = keep[labels]
    return ndimage.binary_fill_holes(mask)


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values))


def otsu_mask(image: np.ndarray, pixel_size_A: float | None = None, smooth_px: float = 2.0) -> np.ndarray:
    """Otsu threshold of the lightly smoothed intensity; particles are the DARK side.

    In bright-field HRTEM a particle scatters more electrons out of the objective aperture than
    the thin amorphous film, so it is darker. The image is smoothed with a Gaussian of standard
    deviation ``smooth_px`` pixels (suppressing shot noise and lattice fringes), Otsu's threshold
    of the smoothed values is taken, and pixels strictly below it are particle. ``pixel_size_A``
    is accepted for the uniform baseline signature and not used. A constant image gives an
    empty mask.
    """
    img = _as_image(image)
    smoothed = ndimage.gaussian_filter(img, smooth_px) if smooth_px > 0 else img
    if np.ptp(smoothed) == 0:
        return np.zeros(img.shape, dtype=bool)
    return smoothed < _otsu(smoothed)


def fourier_annulus_mask(image: np.ndarray, pixel_size_A: float | None = None, *,
                         band_inv_A: tuple[float, float] = LATTICE_BAND_INV_A,
                         band_nyquist: tuple[float, float] = LATTICE_BAND_NYQUIST,
                         smooth_periods: float = 2.5, min_contrast: float = 3.0, background_percentile: float = 10.0,
                         opening_px: float = 2.0, min_area_periods: float = 2.0) -> np.ndarray:
    """Fourier-filter the lattice band, smooth the local fringe energy and threshold it.

    Steps:

    1. Subtract the mean and keep the spectrum only inside the annulus ``q_low <= |q| <= q_high``
       of :func:`lattice_band` (from ``band_inv_A`` with a pixel size, otherwise ``band_nyquist``).
       The image is mirrored to twice its size first, so that the jump between opposite edges of
       a non-periodic field does not put spurious streaks into the band.
    2. Inverse transform; the local fringe energy is ``|filtered|²`` smoothed by a Gaussian of
       standard deviation ``smooth_periods`` fringe periods, the period taken at the band centre,
       ``2 / (q_low + q_high)`` pixels.
    3. Threshold: the larger of Otsu's threshold of the smoothed energy and ``min_contrast`` times
       its ``background_percentile`` percentile. The percentile estimates the amorphous-carbon
       level (assuming carbon covers more than that share of the field); the floor keeps a field
       without any lattice (nearly) empty, where Otsu alone would split noise in two. The price:
       fringes that raise the band energy by less than ``min_contrast`` over the carbon (faint
       fringes under strong amorphous speckle) are missed altogether; the wide default band holds
       much carbon energy, so a band matched to the material (``band_inv_A``) helps.
    4. Clean: opening with a disc of ``opening_px`` pixels, removal of regions smaller than a disc
       of radius ``min_area_periods`` periods, hole filling.

    Returns
    -------
    numpy.ndarray
        Boolean mask, True where lattice fringes are found.
    """
    img = _as_image(image)
    low, high = lattice_band(pixel_size_A, band_inv_A, band_nyquist)
    ny, nx = img.shape
    mirrored = np.pad(img - img.mean(), ((0, ny), (0, nx)), mode="symmetric")
    qy = np.fft.fftfreq(2 * ny)[:, None]
    qx = np.fft.rfftfreq(2 * nx)[None, :]
    q = np.hypot(qy, qx)
    annulus = (q >= low) & (q <= high)
    filtered = np.fft.irfft2(np.fft.rfft2(mirrored) * annulus, s=mirrored.shape)[:ny, :nx]
    period = 2.0 / (low + high)
    energy = ndimage.gaussian_filter(filtered * filtered, smooth_periods * period)
    if np.ptp(energy) <= 1e-12 * max(float(energy.max()), 1e-300):
        return np.zeros(img.shape, dtype=bool)
    threshold = max(_otsu(energy), min_contrast * float(np.percentile(energy, background_percentile)))
    mask = energy > threshold
    return _clean(mask, opening_px, np.pi * (min_area_periods * period) ** 2)


def _patch_starts(n: int, window: int, step: int) -> np.ndarray:
    starts = list(range(0, n - window + 1, step))
    if starts[-1] != n - window:
        starts.append(n - window)
    return np.asarray(starts)


def bragg_peak_score(image: np.ndarray, pixel_size_A: float | None = None, *, window_px: int = 64,
                     step_px: int = 16, band_inv_A: tuple[float, float] = LATTICE_BAND_INV_A,
                     band_nyquist: tuple[float, float] = LATTICE_BAND_NYQUIST, background_halfwidth: int = 1,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak-to-background ratio of the local power spectrum in the lattice band, per patch.

    Patches of ``window_px`` × ``window_px`` pixels on a grid of step ``step_px`` (the last row
    and column of patches are aligned with the image edge) have their mean subtracted and are
    multiplied by a 2D Hann window before the FFT. For every ring of FFT bins of integer radius
    r inside the band, the largest power on the ring is divided by the median power of the shell
    of radii ``r ± background_halfwidth`` (the radially averaged background of the amorphous
    carbon, robust to a few peaks); the score is the largest such ratio over the band. Speckle of
    an amorphous patch gives roughly exponentially distributed power, for which this ratio is
    typically 5–15 and, over the ~800 patches of a 512 × 512 field, stays below about 25; a
    lattice gives a Bragg peak well above its ring.

    Returns
    -------
    score : numpy.ndarray
        Shape (number of patch rows, number of patch columns).
    centers_y, centers_x : numpy.ndarray
        Patch centres in pixel coordinates (rows, columns).
    """
    img = _as_image(image)
    ny, nx = img.shape
    window = int(window_px)
    step = int(step_px)
    if window < 8 or step < 1:
        raise ValueError(f"window_px must be >= 8 and step_px >= 1, got {window_px} and {step_px}")
    if ny < window or nx < window:
        raise ValueError(f"image {img.shape} is smaller than the {window}-pixel window")
    low, high = lattice_band(pixel_size_A, band_inv_A, band_nyquist)
    radius = np.hypot(np.fft.fftfreq(window)[:, None], np.fft.fftfreq(window)[None, :]) * window
    ring = np.rint(radius).astype(int)
    ring_ids = [r for r in range(int(np.ceil(low * window)), int(np.floor(high * window)) + 1)
                if np.count_nonzero(ring == r) >= 4]
    if not ring_ids:
        raise ValueError(f"no FFT ring of a {window}-pixel window lies in the lattice band; enlarge window_px")
    ring_pixels = [np.flatnonzero(ring.ravel() == r) for r in ring_ids]
    shell_pixels = [np.flatnonzero(np.abs(ring.ravel() - r) <= background_halfwidth) for r in ring_ids]
    hann = np.hanning(window)
    taper = hann[:, None] * hann[None, :]
    starts_y = _patch_starts(ny, window, step)
    starts_x = _patch_starts(nx, window, step)
    views = np.lib.stride_tricks.sliding_window_view(img, (window, window))
    score = np.empty((starts_y.size, starts_x.size))
    for i, y0 in enumerate(starts_y):
        patches = views[y0, starts_x]  # (n_x, window, window), a copy
        patches = (patches - patches.mean(axis=(1, 2), keepdims=True)) * taper
        power = np.abs(np.fft.fft2(patches)) ** 2
        power = power.reshape(power.shape[0], -1)
        best = np.zeros(power.shape[0])
        for pixels, shell in zip(ring_pixels, shell_pixels, strict=True):
            background = np.median(power[:, shell], axis=1)
            ratio = power[:, pixels].max(axis=1) / np.maximum(background, 1e-300)
            best = np.maximum(best, ratio)
        score[i] = best
    return score, starts_y + (window - 1) / 2.0, starts_x + (window - 1) / 2.0


def _interpolate_grid(values: np.ndarray, centers_y: np.ndarray, centers_x: np.ndarray,
                      shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a grid of patch values to every pixel (constant beyond the outer centres)."""
    rows = np.arange(shape[0], dtype=float)
    cols = np.arange(shape[1], dtype=float)
    along_x = np.stack([np.interp(cols, centers_x, row) for row in values])  # (n_patch_rows, nx)
    return np.stack([np.interp(rows, centers_y, column) for column in along_x.T], axis=1)


def bragg_peak_mask(image: np.ndarray, pixel_size_A: float | None = None, *, window_px: int = 64,
                    step_px: int = 16, peak_factor: float = 30.0,
                    band_inv_A: tuple[float, float] = LATTICE_BAND_INV_A,
                    band_nyquist: tuple[float, float] = LATTICE_BAND_NYQUIST) -> np.ndarray:
    """Crystalline where the local spectrum has a Bragg peak well above its ring background.

    Rule: compute :func:`bragg_peak_score` on Hann-windowed patches; interpolate the logarithm of
    the score bilinearly from the patch centres to every pixel (a weighted geometric mean of the
    nearest patch scores, constant beyond the outermost centres); a pixel is particle where the
    interpolated score exceeds ``peak_factor``; holes are filled. The default factor 30 sits
    above the amorphous speckle (see :func:`bragg_peak_score`) and below the peaks of fringes
    whose amplitude is comparable to the amorphous contrast or larger (a ratio from about 40 up
    to thousands for 64-pixel patches). Because a patch that only partly covers a crystal still
    shows its peak, the mask extends up to about half of ``window_px`` beyond the crystal edge; a
    smaller window sharpens edges but weakens the peaks of small or faint crystals. Other
    anisotropic features with power in the band (a straight, high-contrast edge of a particle or
    of a hole in the film) can also score high.
    """
    img = _as_image(image)
    score, centers_y, centers_x = bragg_peak_score(img, pixel_size_A, window_px=window_px, step_px=step_px,
                                                   band_inv_A=band_inv_A, band_nyquist=band_nyquist)
    log_score = _interpolate_grid(np.log(np.maximum(score, 1e-300)), centers_y, centers_x, img.shape)
    return ndimage.binary_fill_holes(log_score > np.log(peak_factor))


#: Name → baseline, each called as ``baseline(image, pixel_size_A=None) -> bool mask``.
BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "otsu": otsu_mask,
    "fourier": fourier_annulus_mask,
    "bragg": bragg_peak_mask,
}
