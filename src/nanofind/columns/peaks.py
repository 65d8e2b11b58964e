"""Atomic columns as sub-pixel intensity peaks: classical, no training.

Convention: positions are in pixels with the origin at the top-left corner of the top-left
pixel, ``x`` along columns and ``y`` along rows, so the centre of pixel ``[row, col]`` is at
``(x, y) = (col + 0.5, row + 0.5)``. Multiply by the pixel size for Å.

The chain (:func:`find_columns`):

1. the column spacing, if not given, from the image's whitened autocorrelation
   (:func:`lattice_spacing_px`), which also refuses images without a lattice;
2. a band-pass in one cosine-transform pass (:func:`band_pass`): smoothing of a tenth of the
   spacing less a background of one spacing;
3. contrast: bright columns (HAADF-STEM, HRTEM at some foci) or dark ones (HRTEM at others) are
   turned into bright peaks; ``auto`` takes the sign of the skewness of the band-passed image,
   since columns are narrow extremes on a broad background;
4. local maxima at least ``min_separation_px`` apart and above a noise threshold are kept;
5. each is refined to sub-pixel precision, all at once: the centre of mass of the peak's upper
   half, on whole-pixel then interpolated windows (``refine="com"``), or a batched 2D Gaussian
   fit (``refine="gaussian"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from nanofind.errors import NanofindInputError

#: Default minimum separation of two columns, as a fraction of the nearest-neighbour spacing.
MIN_SEPARATION_OF_SPACING = 0.6
#: Detection smoothing (Gaussian sigma) as a fraction of the spacing; about half a column's width.
SMOOTHING_OF_SPACING = 0.1
#: Refinement window half-width as a fraction of the spacing: the peak, not its neighbours.
WINDOW_OF_SPACING = 0.35
#: Peaks lower than this fraction of the 95th percentile of the peaks found are ringing, not columns.
MIN_PEAK_OF_STRONG = 0.05
#: Default detection threshold, in standard deviations of the smoothed image's noise. White noise
#: alone gave 5 false columns per 512² image above 4 deviations, 0.05 above 5 (20 images, spacing 11 px).
THRESHOLD_SIGMA = 5.0
#: Most centre-of-mass iterations (each re-centres the window on the last estimate's pixel).
COM_ITERATIONS = 3
#: Centre-of-mass passes on bilinearly sampled windows centred on the last estimate.
SUBPIXEL_ITERATIONS = 2
#: Gauss-Newton (Levenberg-Marquardt) iterations of the Gaussian refinement.
GAUSSIAN_ITERATIONS = 6
#: Weakest repeat strength that counts as a lattice (:func:`lattice_spacing_px`; white noise: at most 1.1).
LATTICE_MIN_STRENGTH = 1.3
#: :func:`crystal_region`: lattice where the local fringe energy exceeds this many times the film's level.
REGION_CONTRAST = 3.0
#: Largest image this module accepts (pixels), so that no input allocates without bound.
MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class ColumnPeaks:
    """Columns found in one image (pixel units; see the module docstring for the origin).

    ``x_px``, ``y_px``: sub-pixel positions; ``peak``: the background-subtracted height of the
    smoothed peak (image units, for bright contrast); ``intensity``: the mean of the raw image
    over a disc of a quarter spacing around the position (image units, as recorded); ``edge``: the
    refinement window was cut by the image border; ``spacing_px``, ``contrast`` and ``settings``:
    what the search used.
    """

    x_px: np.ndarray
    y_px: np.ndarray
    peak: np.ndarray
    intensity: np.ndarray
    edge: np.ndarray
    spacing_px: float
    contrast: str
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x_px)


def _as_image(image) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim != 2:
        raise NanofindInputError(f"image must be 2D (rows, columns), got shape {x.shape}")
    if x.size > MAX_PIXELS:
        raise NanofindInputError(f"image has {x.size} pixels, more than {MAX_PIXELS}")
    if min(x.shape) < 8:
        raise NanofindInputError(f"image must be at least 8 x 8 pixels, got {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise NanofindInputError("image holds NaN or infinite values")
    return x


def lattice_spacing_px(image, *, min_px: float = 4.0, min_strength: float = LATTICE_MIN_STRENGTH) -> float:
    """Nearest-neighbour column spacing (px) from the image's whitened autocorrelation.

    The power spectrum of the Hann-windowed image is divided by its mean over rings of equal
    spatial frequency (whitened: a lattice's Bragg spots stand out, the smooth spectrum of noise,
    film and the optics becomes flat), tapered above periods of 2.5 px and below a quarter of the
    image, and transformed back. The lattice then repeats around the origin; the nearest local
    maximum at least ``min_px`` out that reaches a third of the strongest is the nearest-neighbour
    vector. The strongest, relative to the origin, measures how much of the image is lattice.

    Raises
    ------
    NanofindInputError
        When the strongest repeat is weaker than ``min_strength`` (white noise reaches about 0.02,
        synthetic lattices of columns 0.06-0.75, a lattice only within a disc a third of the
        image wide 0.15), or none lies
        between ``min_px`` and a third of the image side.
    """
    from scipy import ndimage as ndi

    x = _as_image(image).astype(np.float64)
    h, w = x.shape
    n = min(h, w)
    power = np.abs(np.fft.rfft2((x - x.mean()) * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    freq = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    ring = np.minimum((freq * n).astype(np.intp), n // 2)
    ring_mean = np.bincount(ring.ravel(), power.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    white = power / (ring_mean[ring] + 1e-300)
    white *= np.exp(-2 * (freq * 2.5) ** 2) * (1 - np.exp(-((freq * n / 4) ** 2)))
    ac = np.fft.fftshift(np.fft.irfft2(white, s=x.shape))
    ac /= max(float(ac.max()), 1e-300)
    reach = int(n / 3) + 1  # only lags within a third of the side are searched
    ac = ac[h // 2 - reach:h // 2 + reach + 1, w // 2 - reach:w // 2 + reach + 1]
    offsets = np.arange(-reach, reach + 1)
    radius = np.hypot(offsets[:, None], offsets[None, :])
    local_max = (ac == ndi.maximum_filter(ac, size=3)) & (radius >= min_px) & (radius < n / 3)
    values = ac[local_max]
    peak = float(values.max()) if len(values) else 0.0
    strength = peak * np.sqrt(h * w) / 10
    if strength < min_strength:
        raise NanofindInputError(f"no lattice of atomic columns found (repeat strength {strength:.2f} < "
                                 f"{min_strength}); give the column spacing (--spacing) to search anyway")
    return float(radius[local_max & (ac >= peak / 3)].min())


def crystal_region(image, spacing_px: float, *, contrast_factor: float = REGION_CONTRAST) -> np.ndarray | None:
    """Where the image holds a lattice of the given spacing: True there, or None when it is all lattice.

    The image is band-passed to spatial frequencies from 0.8 to 2.5 over the column spacing (the
    lattice's fringes, not the amorphous film's broader speckle), squared and smoothed over one
    spacing: the local lattice energy. Its 10th percentile is taken as the film's level, and the
    region is where the energy exceeds ``contrast_factor`` times that. When the 90th percentile is
    not above that threshold either, the field is one texture throughout, and since this is only
    asked once a lattice has been found, it is lattice everywhere: None (search everywhere). On the
    bundled CeO2 example (a 5.7 nm particle filling most of a 6 nm field on carbon) the region
    covers 72 % of the field and 97.8 % of the true columns.
    """
    from scipy import fft

    x = _as_image(image)
    freq = np.sqrt(dct_frequency_squared(x.shape, np.float64))  # cycles per px
    coeffs = fft.dctn(x - x.mean(), type=2, workers=-1)
    fringes = fft.idctn(coeffs * ((freq >= 0.8 / spacing_px) & (freq <= 2.5 / spacing_px)), type=2, workers=-1)
    smooth = np.exp(-2 * np.pi ** 2 * spacing_px ** 2 * freq ** 2)
    energy = fft.idctn(fft.dctn(fringes * fringes, type=2, workers=-1) * smooth, type=2, workers=-1)
    low, high = np.percentile(energy, (10, 90))
    threshold = contrast_factor * max(float(low), 1e-30)
    if high <= threshold:
        return None
    return energy > threshold


def noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of white noise in an image, from the median absolute second difference.

    The 4-neighbour Laplacian cancels smooth signal; for white noise of deviation σ it has deviation
    √20·σ, and its median absolute value is 0.6745 of that.
    """
    x = np.asarray(image, dtype=np.float32)
    lap = 4 * x[1:-1:2, 1:-1] - x[:-2:2, 1:-1] - x[2::2, 1:-1] - x[1:-1:2, :-2] - x[1:-1:2, 2:]  # every other row
    return float(np.median(np.abs(lap)) / (0.6745 * np.sqrt(20.0)))


def _edge_noise_factor(distance_px: np.ndarray, smooth_px: float) -> np.ndarray:
    """Noise deviation at ``distance_px`` from a mirrored edge, relative to far from it, per axis."""
    return np.sqrt(1 + np.exp(-((2 * distance_px + 1) ** 2) / (4 * smooth_px ** 2)))


def _skewness(x: np.ndarray) -> float:
    d = x[::2, ::2].astype(np.float64)  # every fourth pixel: the sign is all that is used
    d = d - d.mean()
    return float((d * d * d).mean() / max(float((d * d).mean()) ** 1.5, 1e-30))


def dct_frequency_squared(shape: tuple[int, int], dtype=np.float32) -> np.ndarray:
    """Squared spatial frequency (cycles² per px²) of every coefficient of a type-II cosine transform."""
    h, w = shape
    fy = (np.arange(h, dtype=dtype) / (2 * h))[:, None]
    fx = (np.arange(w, dtype=dtype) / (2 * w))[None, :]
    return fy * fy + fx * fx


def band_pass(image: np.ndarray, smooth_px: float, background_px: float) -> np.ndarray:
    """``gaussian(image, smooth_px) - gaussian(image, background_px)`` with mirrored edges, in one pass.

    Gaussian filtering with half-sample mirrored edges is a product in the type-II cosine
    transform, so both filters and their difference cost one forward and one inverse transform,
    whatever the sigmas (px).
    """
    from scipy import fft

    coeffs = fft.dctn(image.astype(np.float32, copy=False), type=2, workers=-1)
    f2 = dct_frequency_squared(image.shape)
    transfer = np.exp(-2 * np.pi ** 2 * smooth_px ** 2 * f2) - np.exp(-2 * np.pi ** 2 * background_px ** 2 * f2)
    return fft.idctn(coeffs * transfer.astype(np.float32), type=2, workers=-1)


def _windows(padded: np.ndarray, pad: int, y: np.ndarray, x: np.ndarray, half: int) -> np.ndarray:
    """Square windows ``(n, 2·half+1, 2·half+1)`` of bilinear samples centred on each ``(y, x)``.

    ``padded`` is the image with ``pad`` ≥ ``half + 1`` edge pixels added on every side; ``y``, ``x``
    are array-index positions in the unpadded image (clipped to it). All samples of one window share
    the fractional part of its centre, so a window is one gather of whole pixels and three weighted
    sums, not a bilinear lookup per sample.
    """
    h, w = padded.shape[0] - 2 * pad, padded.shape[1] - 2 * pad
    y = np.clip(y, 0, h - 1)
    x = np.clip(x, 0, w - 1)
    y0, x0 = np.floor(y).astype(np.intp), np.floor(x).astype(np.intp)
    fy = (y - y0).astype(np.float32)[:, None, None]
    fx = (x - x0).astype(np.float32)[:, None, None]
    side = 2 * half + 2
    grid = (np.arange(side)[:, None] * padded.shape[1] + np.arange(side)[None, :]).ravel()
    corner = (y0 + pad - half) * padded.shape[1] + (x0 + pad - half)
    patch = padded.ravel()[corner[:, None] + grid].reshape(-1, side, side)
    top = patch[:, :-1, :-1] * (1 - fx) + patch[:, :-1, 1:] * fx
    bottom = patch[:, 1:, :-1] * (1 - fx) + patch[:, 1:, 1:] * fx
    return top * (1 - fy) + bottom * fy


def _disc(half: int) -> np.ndarray:
    oy, ox = np.mgrid[-half:half + 1, -half:half + 1]
    return oy ** 2 + ox ** 2 <= (half + 0.5) ** 2


def disc_means(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, half: int) -> np.ndarray:
    """Mean of ``image`` over a disc of radius ``half`` px around each (sub-pixel) ``(rows, cols)``.

    ``rows``, ``cols`` are array-index positions (pixel centres at integers), sampled bilinearly;
    beyond the border the edge pixels repeat.
    """
    if not len(rows):
        return np.zeros(0)
    discs = _windows(_padded(image, half + 2), half + 2, np.asarray(rows), np.asarray(cols), half)
    return discs.reshape(len(discs), -1)[:, _disc(half).ravel()].mean(1)


def _window_offsets(half: int) -> tuple[np.ndarray, np.ndarray]:
    oy, ox = np.mgrid[-half:half + 1, -half:half + 1]
    inside = _disc(half)
    return oy[inside].astype(np.float32), ox[inside].astype(np.float32)


def _padded(image: np.ndarray, pad: int, mode: str = "edge") -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if mode == "lowest":  # beyond the border nothing is peak: the lowest value never weighs
        return np.pad(image, pad, mode="constant", constant_values=float(image.min()) if image.size else 0.0)
    return np.pad(image, pad, mode=mode)


def refine_com(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, half_px: int,
               iterations: int = COM_ITERATIONS, subpixel_iterations: int = SUBPIXEL_ITERATIONS,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass of each peak's upper half, all peaks at once.

    ``rows``, ``cols``: starting array-index positions (pixel centres at integers). The window is a
    disc of radius ``half_px``; the weight is the part of a value above the midpoint between the
    window's lowest value and the peak, so that the tails and the neighbours' flanks do not pull
    and the weighted region lies inside the window. Up to ``iterations`` passes move the window
    by whole pixels until it sits on the peak's pixel; ``subpixel_iterations`` more sample it
    bilinearly around the last estimate, so that the clipped level set is sampled symmetrically
    and the pixel grid no longer biases the mean. Beyond the border lies the image's lowest value.
    Returns refined (rows, cols).
    """
    disc = _disc(half_px)
    oy, ox = _window_offsets(half_px)
    padded = _padded(image, half_px + 2, "lowest")
    start_y, start_x = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    y, x = start_y.copy(), start_x.copy()

    def step(windows):
        values = windows.reshape(len(windows), -1)[:, disc.ravel()]
        low = values.min(axis=1, keepdims=True)
        high = values.max(axis=1, keepdims=True)
        weight = np.clip(values - 0.5 * (low + high), 0, None)
        total = np.maximum(weight.sum(axis=1), 1e-30)
        return weight @ oy / total, weight @ ox / total

    for _ in range(iterations):
        cy, cx = np.round(y), np.round(x)
        dy, dx = step(_windows(padded, half_px + 2, cy, cx, half_px))
        y, x = cy + dy, cx + dx
        if not ((np.round(y) != cy) | (np.round(x) != cx)).any():
            break  # every window sits on its peak's pixel
    for _ in range(subpixel_iterations):
        dy, dx = step(_windows(padded, half_px + 2, y, x, half_px))
        y, x = y + dy, x + dx
    # a peak cannot wander off: one that went further than the window falls back to its start
    lost = np.hypot(y - start_y, x - start_x) > half_px
    return np.where(lost, start_y, y), np.where(lost, start_x, x)


def refine_gaussian(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, half_px: int,
                    iterations: int = GAUSSIAN_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``A·exp(-r²/2s²) + B`` to every peak's window at once (Levenberg-Marquardt).

    Windows are the whole pixels within ``half_px`` of each starting position. Fits that leave
    the window or lose their peak fall back to the start. Returns refined (rows, cols).
    """
    rows = np.asarray(rows, dtype=np.float64)
    cols = np.asarray(cols, dtype=np.float64)
    oy, ox = _window_offsets(half_px)
    cy, cx = np.round(rows), np.round(cols)
    py = (cy[:, None] + oy).astype(np.float64)
    px = (cx[:, None] + ox).astype(np.float64)
    h, w = image.shape
    values = image[np.clip(py, 0, h - 1).astype(np.intp), np.clip(px, 0, w - 1).astype(np.intp)].astype(np.float64)
    low, high = values.min(1), values.max(1)
    # parameters: amplitude, row, col, sigma (px), background
    p = np.stack([high - low, rows, cols, np.full(len(rows), max(half_px / 2.5, 0.7)), low], axis=1)
    damping = np.full(len(rows), 1e-2)
    eye = np.eye(5)

    def residual_and_jacobian(q):
        dy, dx = py - q[:, 1:2], px - q[:, 2:3]
        s2 = q[:, 3:4] ** 2
        g = np.exp(-(dy ** 2 + dx ** 2) / (2 * s2))
        model = q[:, 0:1] * g + q[:, 4:5]
        jac = np.stack([g, q[:, 0:1] * g * dy / s2, q[:, 0:1] * g * dx / s2,
                        q[:, 0:1] * g * (dy ** 2 + dx ** 2) / (s2 * q[:, 3:4]), np.ones_like(g)], axis=2)
        return values - model, jac

    r, jac = residual_and_jacobian(p)
    cost = (r ** 2).sum(1)
    for _ in range(iterations):
        jtj = np.einsum("nmi,nmj->nij", jac, jac)
        jtr = np.einsum("nmi,nm->ni", jac, r)
        scale = np.einsum("nii->ni", jtj)
        lhs = jtj + damping[:, None, None] * scale[:, :, None] * eye
        try:
            step = np.linalg.solve(lhs, jtr[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            break
        trial = p + step
        trial[:, 3] = np.abs(trial[:, 3]) + 1e-3
        r_t, jac_t = residual_and_jacobian(trial)
        cost_t = (r_t ** 2).sum(1)
        better = np.isfinite(cost_t) & (cost_t < cost)
        p[better], r[better], jac[better], cost[better] = trial[better], r_t[better], jac_t[better], cost_t[better]
        damping = np.where(better, damping / 3, damping * 4)
    lost = (np.hypot(p[:, 1] - rows, p[:, 2] - cols) > half_px) | (p[:, 0] <= 0) | ~np.isfinite(p).all(1)
    return np.where(lost, rows, p[:, 1]), np.where(lost, cols, p[:, 2])


def _keep_separated(rows: np.ndarray, cols: np.ndarray, strength: np.ndarray, min_separation_px: float) -> np.ndarray:
    """Indices of peaks kept when any two closer than ``min_separation_px`` keep the stronger."""
    from scipy.spatial import cKDTree

    order = np.argsort(-strength, kind="stable")
    points = np.column_stack([rows[order], cols[order]])
    pairs = cKDTree(points).query_pairs(min_separation_px, output_type="ndarray")
    if not len(pairs):
        return order
    keep = np.ones(len(order), dtype=bool)
    # Pairs sorted by the stronger member: a peak drops its weaker neighbours only while it is kept.
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    for a, b in pairs:
        if keep[a]:
            keep[b] = False
    return order[keep]


def find_columns(image, *, spacing_px: float | None = None, min_separation_px: float | None = None,
                 contrast: Literal["auto", "bright", "dark"] = "auto", threshold_sigma: float = THRESHOLD_SIGMA,
                 min_peak: float | None = None, refine: Literal["com", "gaussian", "none"] = "com",
                 region: np.ndarray | None = None) -> ColumnPeaks:
    """Atomic columns of one image as sub-pixel peaks.

    Parameters
    ----------
    image : (rows, cols) array
        An atomic-resolution image, or a network's column-probability map.
    spacing_px : float, optional
        Nearest-neighbour column spacing (px); measured (:func:`lattice_spacing_px`) when omitted.
    min_separation_px : float, optional
        Two peaks closer than this keep only the stronger; default 0.6 of the spacing.
    contrast : {"auto", "bright", "dark"}
        Columns brighter than their surroundings (HAADF-STEM) or darker (HRTEM at some foci).
    threshold_sigma : float
        Peaks lower than this many noise deviations of the smoothed, background-subtracted image are
        dropped (the noise from :func:`noise_sigma`).
    min_peak : float, optional
        Also drop peaks lower than this (image units, background-subtracted, bright contrast).
    refine : {"com", "gaussian", "none"}
        Sub-pixel refinement: iterated centre of mass (:func:`refine_com`), a 2D Gaussian fit
        (:func:`refine_gaussian`) or none (pixel centres).
    region : (rows, cols) bool array, optional
        Where columns may be (for example :func:`crystal_region`): peaks outside are dropped, and
        ``contrast="auto"`` looks only inside.

    Returns
    -------
    ColumnPeaks
        Positions in px, origin at the top-left corner of the top-left pixel.
    """
    from scipy import ndimage as ndi

    if contrast not in ("auto", "bright", "dark"):
        raise NanofindInputError(f"contrast must be auto, bright or dark, got {contrast!r}")
    if refine not in ("com", "gaussian", "none"):
        raise NanofindInputError(f"refine must be com, gaussian or none, got {refine!r}")
    x = _as_image(image)
    spacing = float(spacing_px) if spacing_px is not None else lattice_spacing_px(x)
    if not 2.0 <= spacing <= min(x.shape) / 2:
        raise NanofindInputError(f"column spacing must be 2 px to half the image side, got {spacing:.3g} px")
    separation = float(min_separation_px) if min_separation_px is not None else MIN_SEPARATION_OF_SPACING * spacing
    if not 1.0 <= separation <= min(x.shape) / 2:
        raise NanofindInputError(f"min separation must be 1 px to half the image side, got {separation:.3g} px")
    smooth_px = max(0.5, SMOOTHING_OF_SPACING * spacing)
    band = band_pass(x, smooth_px, spacing)
    if region is not None:
        region = np.asarray(region, dtype=bool)
        if region.shape != x.shape:
            raise NanofindInputError(f"region must have the image's shape {x.shape}, got {region.shape}")
    if contrast == "auto":
        inside = band if region is None or not region.any() else band[region]
        contrast = "bright" if _skewness(inside if inside.ndim == 2 else inside[None]) >= 0 else "dark"
    if contrast == "dark":
        band = -band
    noise = noise_sigma(x) / (2 * np.sqrt(np.pi) * smooth_px)  # white noise after the smoothing
    threshold = max(threshold_sigma * noise, min_peak if min_peak is not None else -np.inf)
    half = max(1, int(round(WINDOW_OF_SPACING * spacing)))
    local = ndi.maximum_filter(band, size=2 * max(1, int(separation / 2)) + 1, mode="nearest")
    candidates = (band == local) & (band > threshold)
    if region is not None:
        candidates &= region
    rows, cols = np.nonzero(candidates)
    strength = band[rows, cols]
    # Mirrored edges fold the smoothing kernel onto itself: the noise there is up to √2 higher per edge.
    h, w = x.shape
    fold_y = _edge_noise_factor(np.minimum(rows, h - 1 - rows), smooth_px)
    fold_x = _edge_noise_factor(np.minimum(cols, w - 1 - cols), smooth_px)
    above = strength > np.maximum(threshold * fold_y * fold_x, 0)
    if above.any():  # ringing and noise-free ripples: far below every real column
        above &= strength >= MIN_PEAK_OF_STRONG * np.percentile(strength[above], 95)
    rows, cols, strength = rows[above], cols[above], strength[above]
    kept = _keep_separated(rows.astype(np.float64), cols.astype(np.float64), strength, separation)
    kept = kept[np.lexsort((cols[kept], rows[kept]))]  # reading order: by row, then column
    rows, cols = rows[kept].astype(np.float64), cols[kept].astype(np.float64)
    if refine == "com" and len(rows):
        rows, cols = refine_com(band, rows, cols, half_px=half)
    elif refine == "gaussian" and len(rows):
        rows, cols = refine_gaussian(-x if contrast == "dark" else x, rows, cols, half_px=half)
    edge = (rows < half) | (cols < half) | (rows > h - 1 - half) | (cols > w - 1 - half)
    settings = {"spacing_px": round(spacing, 4), "min_separation_px": round(separation, 4),
                "smoothing_px": round(smooth_px, 4), "window_half_px": half, "threshold": float(threshold),
                "noise_sigma": float(noise), "threshold_sigma": threshold_sigma, "refine": refine}
    if not len(rows):
        nothing = np.zeros(0)
        return ColumnPeaks(nothing, nothing, nothing, nothing, np.zeros(0, bool), spacing, contrast, settings)
    peak = _windows(_padded(band, 2), 2, rows, cols, 0)[:, 0, 0]
    intensity = disc_means(x, rows, cols, max(1, int(round(0.25 * spacing))))
    return ColumnPeaks(cols + 0.5, rows + 0.5, np.asarray(peak, np.float64), np.asarray(intensity, np.float64),
                       edge, spacing, contrast, settings)
