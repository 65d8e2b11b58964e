"""Features of a particle crop for defect classification (seed 004, ch. 3, and richer ones).

Every feature is computed from the crop alone (no mask, no pixel size), so that a crop cut by
``nanofind analyze`` and a crop a user saved as a PNG are described alike. Frequencies are in
cycles per pixel (0–0.5). The crop is normalised by its outer ring (the background around the
particle: median and robust spread), and its Fourier transform is taken under a radial Hann
window.

- :func:`seed_features`: the five features of seed 004, ch. 3 — mean, standard deviation and
  centre of mass of the radially integrated Fourier transform, and the mean and standard
  deviation of the region (the crop's central disc) in real space.
- :func:`rich_features`: those five, the radial power profile, Bragg-spot statistics (spots above
  their ring's median, the number of distinct spot directions and spacings), rotation-invariant
  angular harmonics of the power in four frequency bands, lattice-fringe orientations in tiles
  (twins turn them), and the shape of the particle's own threshold mask (agglomerates have two
  lobes).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

#: Names of :func:`seed_features`, in order.
SEED_FEATURES = ("fft_radial_mean", "fft_radial_std", "fft_radial_centre_of_mass", "region_mean", "region_std")
_RADIAL_BINS = np.linspace(0.02, 0.5, 25)
_BANDS = ((0.05, 0.12), (0.12, 0.2), (0.2, 0.3), (0.3, 0.45))
_HARMONICS = 6
#: A Fourier spot is a local maximum this many times its ring's level (speckle of pure noise exceeds 30
#: times the geometric-mean level with probability ~1e-7 per pixel).
SPOT_RATIO = 30.0
#: Spots weaker than the strongest by more than this factor are not counted.
SPOT_RANGE = 10.0
_SPOT_BAND = (0.05, 0.48)
_SHAPE_PX = 64
#: Side of the central window whose spectrum the rich features describe, px.
SPECTRAL_PX = 160


def _rich_names() -> tuple[str, ...]:
    names = list(SEED_FEATURES)
    names += ["region_skew", "region_kurtosis", "contrast_to_background", "outer_std"]
    names += [f"radial_power_{k}" for k in range(len(_RADIAL_BINS) - 1)]
    names += ["spots", "spot_max_log_ratio", "spot_top6_log_ratio", "spot_directions", "spot_spacings",
              "strong_spot_directions"]
    names += [f"band{b}_harmonic{h}" for b in range(len(_BANDS)) for h in range(1, _HARMONICS + 1)]
    names += ["streak_strength", "streak_to_spot_deg", "relrod_max", "relrod_spread"]
    names += ["tiles_with_fringes", "tile_orientation_spread", "tile_orientation_range_deg"]
    names += ["mask_area_fraction", "mask_solidity", "mask_eccentricity", "mask_components", "mask_lobes"]
    return tuple(names)


#: Names of :func:`rich_features`, in order.
RICH_FEATURES = _rich_names()


@lru_cache(maxsize=256)
def _radius(shape: tuple[int, int]) -> np.ndarray:
    """Distance of each pixel from the centre, in half the smaller side."""
    yy, xx = np.indices(shape)
    return np.hypot(yy - (shape[0] - 1) / 2, xx - (shape[1] - 1) / 2) / (min(shape) / 2)


@lru_cache(maxsize=256)
def _rings(shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Masks of the outer ring (r > 0.85), the inner disc (r < 0.5) and the inscribed disc (r < 1)."""
    r = _radius(shape)
    return _frozen(r > 0.85, r < 0.5, r < 1)


def _normalised(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop minus its outer ring's median, over the ring's robust spread; and the inner disc (r < 0.5)."""
    crop = np.asarray(crop, dtype=np.float64)
    ring, inner, _ = _rings(crop.shape)
    outer = crop[ring]
    centre = np.median(outer) if outer.size else np.median(crop)
    spread = 1.4826 * np.median(np.abs(outer - centre)) if outer.size else 0.0
    if not spread > 0:
        spread = crop.std() or 1.0
    return (crop - centre) / spread, inner


@lru_cache(maxsize=256)
def _hann(shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Radial Hann window over the crop's inscribed disc, and its sum."""
    r = _radius(shape)
    window = np.where(r < 1, 0.5 * (1 + np.cos(np.pi * np.minimum(r, 1))), 0.0)
    return window, max(float(window.sum()), 1.0)


@lru_cache(maxsize=64)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Each Fourier pixel's |f| (cycles/px), angle (0–180°), ring, f_y and f_x.

    (Only the spectral features' windows come here, a few shapes; the network's whole-crop spectra,
    one shape per crop, need the window alone: :func:`_hann`.)
    """
    fy = np.broadcast_to(np.fft.fftshift(np.fft.fftfreq(shape[0]))[:, None], shape)
    fx = np.broadcast_to(np.fft.fftshift(np.fft.fftfreq(shape[1]))[None, :], shape)
    freq = np.hypot(fy, fx)
    angle = np.degrees(np.arctan2(fy, fx)) % 180.0
    ring = np.round(freq * min(shape)).astype(int)
    return freq, angle, ring, fy, fx


def _spectrum(x: np.ndarray) -> np.ndarray:
    """Power spectrum under a radial Hann window (shifted so that f = 0 is at the centre)."""
    window, total = _hann(x.shape)
    f = np.fft.fftshift(np.fft.fft2((x - x[_rings(x.shape)[2]].mean()) * window))
    return (f.real**2 + f.imag**2) / total


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.flags.writeable = False  # cached and shared between crops
    return arrays


@lru_cache(maxsize=64)
def _band(shape: tuple[int, int], lo: float, hi: float, include_lo: bool = False) -> np.ndarray:
    """Fourier pixels with lo < |f| < hi (lo ≤ |f| with ``include_lo``), cycles/px."""
    freq = _grid(shape)[0]
    return _frozen(((freq >= lo) if include_lo else (freq > lo)) & (freq < hi))[0]


@lru_cache(maxsize=64)
def _bins(shape: tuple[int, int], kind: str) -> tuple[np.ndarray, ...]:
    """Per-shape bin indices of the spectral features, computed once per window shape.

    ``profile``: 64 bins of |f| up to 0.5 (kept ones, and the mask); ``radial``: the bins of
    :data:`_RADIAL_BINS` (kept ones, the mask, counts); ``angle5``: 5° bins (0–35); ``angle1``:
    1° bins (0–179); ``ring``: each pixel's ring of :func:`_ring_level` and the rings' pixel counts.
    """
    freq, angle, ring = _grid(shape)[:3]
    if kind == "ring":
        return _frozen(ring, np.maximum(np.bincount(ring.ravel()), 1))
    if kind == "profile":
        bins = np.minimum((freq / 0.5 * 64).astype(int), 64)
        keep = (bins >= 1) & (bins < 64)
        return _frozen(bins[keep], keep)
    if kind == "radial":
        which = np.digitize(freq, _RADIAL_BINS) - 1
        inside = (which >= 0) & (which < len(_RADIAL_BINS) - 1)
        return _frozen(which[inside], inside, np.bincount(which[inside], minlength=len(_RADIAL_BINS) - 1))
    width, top = {"angle5": (5, 35), "angle1": (1, 179)}[kind]
    return _frozen(np.minimum((angle / width).astype(int), top))


def _power(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_spectrum`, and each Fourier pixel's |f| (cycles/px) and angle (0–180°)."""
    freq, angle = _grid(x.shape)[:2]
    return _spectrum(x), freq, angle


def _ring_level(power: np.ndarray) -> np.ndarray:
    """Each pixel's ring level of the power: the geometric mean over its ring, one frequency step wide.

    (Speckle power is exponentially distributed, so a few Bragg spots barely move the geometric
    mean; it is a robust background, and far cheaper than a median per ring.)
    """
    ring, counts = _bins(power.shape, "ring")
    log = np.log(np.maximum(power, 1e-30))
    return np.exp((np.bincount(ring.ravel(), weights=log.ravel()) / counts)[ring])


def _seed_part(x: np.ndarray, inner: np.ndarray, power: np.ndarray, freq: np.ndarray) -> list[float]:
    kept, keep = _bins(freq.shape, "profile")
    profile = np.bincount(kept, weights=np.sqrt(power[keep]), minlength=64)[1:]
    f_mid = (np.arange(1, 64) + 0.5) / 64 * 0.5
    com = float((profile * f_mid).sum() / max(profile.sum(), 1e-12))
    region = x[inner]
    return [float(profile.mean()), float(profile.std()), com, float(region.mean()), float(region.std())]


def seed_features(crop: np.ndarray) -> np.ndarray:
    """The five features of seed 004, ch. 3 (:data:`SEED_FEATURES`) of one crop."""
    x, inner = _normalised(crop)
    power, freq, _ = _power(x)
    return np.array(_seed_part(x, inner, power, freq))


def _spot_mask(ratio: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """Fourier spots: local maxima (5 × 5) over :data:`SPOT_RATIO` in the spot band."""
    peak = (ratio == ndimage.maximum_filter(ratio, size=5)) & (ratio > SPOT_RATIO)
    return peak & _band(freq.shape, *_SPOT_BAND)


def _spots(ratio: np.ndarray, freq: np.ndarray, angle: np.ndarray, peak: np.ndarray) -> list[float]:
    values, f, a = ratio[peak], freq[peak], angle[peak]
    # side lobes of a strong spot (the particle's outline windows the lattice) are local maxima too:
    # count only spots within a factor SPOT_RANGE of the strongest
    keep = values >= (values.max() / SPOT_RANGE if len(values) else 0)
    order = np.argsort(values[keep])[::-1][:40]
    values, f, a = values[keep][order], f[keep][order], a[keep][order]

    def distinct(v, tolerance, wrap=None):
        kept: list[float] = []
        for x in v:
            d = [abs(x - y) if wrap is None else min(abs(x - y), wrap - abs(x - y)) for y in kept]
            if all(t > tolerance(x) for t in d):
                kept.append(x)
        return len(kept)

    log = np.log10(values) if len(values) else np.zeros(0)
    return [float(len(values) / 2), float(log.max()) if len(log) else 0.0,
            float(log[:6].mean()) if len(log) else 0.0,
            float(distinct(a, lambda _: 6.0, wrap=180.0)), float(distinct(f, lambda x: 0.04 * x)),
            float(distinct(a[values > 4 * SPOT_RATIO], lambda _: 6.0, wrap=180.0))]


def _harmonics(ratio: np.ndarray, freq: np.ndarray, angle: np.ndarray) -> list[float]:
    out = []
    bins = _bins(angle.shape, "angle5")[0]
    for lo, hi in _BANDS:
        band = _band(freq.shape, lo, hi, include_lo=True)
        profile = np.bincount(bins[band], weights=np.log1p(ratio[band]), minlength=36)
        coefficients = np.abs(np.fft.rfft(profile))
        out += list(coefficients[1:_HARMONICS + 1] / max(coefficients[0], 1e-12))
    return out


def _streak(ratio: np.ndarray, freq: np.ndarray, angle: np.ndarray) -> list[float]:
    """Diffuse streaking: the strongest line of excess power through the origin, spots left out.

    A planar defect seen edge-on streaks the spectrum along its normal, which is also the
    direction of one of the lattice's spots; returned: the streak's excess mean log power over the
    median direction, and its angle to the strongest spot's direction (degrees).
    """
    use = _band(freq.shape, 0.03, 0.35) & (ratio < SPOT_RATIO)
    bins = _bins(angle.shape, "angle1")[0][use]
    log = np.log(np.maximum(ratio[use], 1e-12))
    counts = np.bincount(bins, minlength=180)
    means = np.bincount(bins, weights=log, minlength=180) / np.maximum(counts, 1)
    smooth = np.convolve(np.concatenate([means[-2:], means, means[:2]]), np.ones(5) / 5, mode="valid")
    k = int(np.argmax(smooth))
    strongest = angle.flat[int(np.argmax(np.where(_band(freq.shape, 0.05, np.inf), ratio, 0)))]
    d = abs(k + 0.5 - strongest) % 180
    return [float(smooth[k] - np.median(smooth)), float(min(d, 180 - d))]


def _relrods(ratio: np.ndarray, freq: np.ndarray, angle: np.ndarray, peak: np.ndarray) -> list[float]:
    """Streaks through the spots along a spot direction (a planar defect's relrods), spots left out.

    For each of the three strongest spot directions g, the spectrum (log ratio to its ring level,
    spots and the centre removed) is averaged along lines parallel to g; a stacking fault normal to
    g puts excess on the lines through the spots. Returned: the largest excess of a line over the
    median line, and how much that excess differs between the directions.
    """
    n = ratio.shape[0]
    fy, fx = _grid(ratio.shape)[3:]
    if not peak.any():
        return [0.0, 0.0]
    order = np.argsort(ratio[peak])[::-1]
    directions: list[float] = []
    for a in angle[peak][order]:
        if all(min(abs(a - b), 180 - abs(a - b)) > 10 for b in directions):
            directions.append(float(a))
        if len(directions) == 3:
            break
    use = (ratio < SPOT_RATIO) & _band(freq.shape, 0.03, 0.45)
    log = np.log(np.maximum(ratio[use], 1e-12))
    excess = []
    for a in np.radians(directions):
        across = -fx[use] * np.sin(a) + fy[use] * np.cos(a)
        bins = np.round(across * n).astype(int) + n
        counts = np.bincount(bins, minlength=2 * n + 1)
        means = np.bincount(bins, weights=log, minlength=2 * n + 1)[counts >= 8] / counts[counts >= 8]
        excess.append(float(means.max() - np.median(means)) if len(means) else 0.0)
    return [max(excess), max(excess) - min(excess)]


def _tiles(x: np.ndarray) -> list[float]:
    n = 2
    size = min(x.shape) // n
    strengths, angles = [], []
    for i in range(n):
        for j in range(n):
            tile = x[i * size:(i + 1) * size, j * size:(j + 1) * size]
            power, freq, angle = _power(tile)
            band = _band(freq.shape, 0.08, 0.48)
            if not band.any():
                continue
            ring = np.exp(np.mean(np.log(np.maximum(power[band], 1e-30))))  # geometric mean: no sort
            k = np.argmax(np.where(band, power, 0))
            strengths.append(power.flat[k] / max(ring, 1e-12))
            angles.append(angle.flat[k])
    strengths, angles = np.array(strengths), np.radians(np.array(angles))
    fringes = strengths > 3 * SPOT_RATIO
    if fringes.sum() < 2:
        return [float(fringes.mean()) if len(fringes) else 0.0, 0.0, 0.0]
    doubled = np.exp(2j * angles[fringes])
    spread = 1 - abs(doubled.mean())
    differences = np.degrees(np.abs(np.angle(doubled[:, None] / doubled[None, :]))) / 2
    return [float(fringes.mean()), float(spread), float(differences.max())]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes`` (4-connected background) by one labelling instead of repeated dilations."""
    background, _ = ndimage.label(~mask)
    edge = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    return ~np.isin(background, edge[edge > 0])


def _solidity_and_eccentricity(region: np.ndarray) -> tuple[float, float]:
    """As scikit-image's ``regionprops`` defines them, of a non-empty boolean region."""
    from skimage.morphology import convex_hull_image

    ys, xs = np.nonzero(region)
    box = region[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    solidity = len(ys) / np.count_nonzero(convex_hull_image(box))
    # the eigenvalues of the inertia tensor are those of the pixels' covariance (population)
    dy, dx = ys - ys.mean(), xs - xs.mean()
    a, b, c = (dy * dy).mean(), (dx * dx).mean(), (dy * dx).mean()
    root = np.sqrt(((a - b) / 2) ** 2 + c * c)
    large, small = (a + b) / 2 + root, max((a + b) / 2 - root, 0.0)
    return float(solidity), float(np.sqrt(1 - small / large)) if large > 0 else 0.0


def _shape(crop: np.ndarray) -> list[float]:
    from skimage.filters import threshold_otsu

    x = np.asarray(crop, dtype=np.float64)
    step = max(1, min(x.shape) // _SHAPE_PX)  # the outline needs no fine pixels: work on ~64 px
    if step > 1:
        ny, nx = (x.shape[0] // step) * step, (x.shape[1] // step) * step
        x = x[:ny, :nx].reshape(ny // step, step, nx // step, step).mean(axis=(1, 3))
    x = _normalised(x)[0]
    smooth = np.abs(ndimage.gaussian_filter(x, max(1.0, min(x.shape) / 50)))
    try:
        mask = smooth > threshold_otsu(smooth)
    except ValueError:  # a flat crop
        return [0.0, 1.0, 0.0, 0.0, 0.0]
    mask = _fill_holes(ndimage.binary_opening(mask, iterations=1))
    labelled, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    areas = np.bincount(labelled.ravel())[1:]
    regions = int(np.count_nonzero(areas >= 0.02 * mask.size))
    if not regions:
        return [0.0, 1.0, 0.0, 0.0, 0.0]
    biggest = labelled == 1 + int(np.argmax(areas))
    solidity, eccentricity = _solidity_and_eccentricity(biggest)
    distance = ndimage.distance_transform_edt(biggest)
    footprint = max(3, int(distance.max() * 0.8)) | 1
    peaks = (distance == ndimage.maximum_filter(distance, size=footprint)) & (distance > 0.5 * distance.max())
    lobes = ndimage.label(peaks)[1]
    return [float(areas.max() / mask.size), solidity, eccentricity, float(regions), float(lobes)]


def _central(crop: np.ndarray, size: int) -> np.ndarray:
    ny, nx = crop.shape
    top, left = max(0, (ny - size) // 2), max(0, (nx - size) // 2)
    return crop[top:top + size, left:left + size]


def rich_features(crop: np.ndarray) -> np.ndarray:
    """All features of one crop (:data:`RICH_FEATURES`).

    The spectral features look at the central :data:`SPECTRAL_PX` × :data:`SPECTRAL_PX` window
    (the lattice is the same across a particle, and the cost stays bounded); the shape features
    at the whole crop.
    """
    x, inner = _normalised(_central(np.asarray(crop), SPECTRAL_PX))
    power, freq, angle = _power(x)
    ratio = power / np.maximum(_ring_level(power), 1e-12)
    region, outer = x[inner], _rings(x.shape)[0]
    centred = region - region.mean()
    sd = max(region.std(), 1e-12)
    out = _seed_part(x, inner, power, freq)
    out += [float((centred**3).mean() / sd**3), float((centred**4).mean() / sd**4), float(np.abs(region.mean())),
            float(x[outer].std()) if outer.any() else 0.0]
    which, inside, counts = _bins(freq.shape, "radial")
    sums = np.bincount(which, weights=np.log10(np.maximum(power[inside], 1e-12)), minlength=len(_RADIAL_BINS) - 1)
    radial = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    radial = np.nan_to_num(radial - np.nanmean(radial))
    out += list(radial)
    peak = _spot_mask(ratio, freq)
    out += _spots(ratio, freq, angle, peak)
    out += _harmonics(ratio, freq, angle)
    out += _streak(ratio, freq, angle)
    out += _relrods(ratio, freq, angle, peak)
    out += _tiles(x)
    out += _shape(crop)
    return np.array(out, dtype=float)


def feature_matrix(crops, kind: str = "rich") -> np.ndarray:
    """Features of many crops, one row each; ``kind`` "seed" or "rich".

    Large batches are spread over worker processes (:mod:`nanofind.classify.crop_pool`).
    """
    from nanofind.classify.crop_pool import map_crops

    function = {"seed": seed_features, "rich": rich_features}[kind]
    width = len(SEED_FEATURES if kind == "seed" else RICH_FEATURES)
    rows = map_crops(function, list(crops))
    return np.array(rows, dtype=float).reshape(len(rows), width)
