"""Scale and lattice-fringe estimates for micrographs whose pixel size is unknown.

``nanofind analyze --model auto`` decides from the pixels alone (1) whether a micrograph shows
atomic lattice fringes (the HRTEM model applies) and (2) how large its particles are in pixels, so
that a low-magnification image can be resampled until its particles fall into the size range the
low-magnification model was trained on. Both cost a few Fourier transforms of at most 512² px.
The fringes are found by :mod:`nanofind.segment.fringes` (:func:`lattice_fringes`, re-exported here).

Particle size (:func:`particle_scale`)
    The scale-normalised Laplacian of Gaussian σ²∇²(G_σ * I) of a disc of diameter d and contrast C
    peaks at its centre at σ = d / (2√2) with the value 2C/e, whatever d. It is evaluated through
    FFTs on a pyramid of 2 × 2 block means, three scales per octave. Blobs are spatial maxima of
    the best response over scales that pass tests against ridges, edges, nesting, noise and film
    texture (:func:`find_blobs`, :func:`_significant`); the answer is their median diameter.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft
from scipy.spatial import cKDTree

from nanofind.errors import NanofindInputError
from nanofind.segment.fringes import FringeEvidence, as_image, lattice_fringes, parabola_vertex

__all__ = ["FringeEvidence", "ParticleScale", "block_mean", "find_blobs", "lattice_fringes", "particle_scale",
           "resample_factor"]

#: Largest side of the pyramid's finest level, px; larger images are block-averaged first.
WORK_SIDE_PX = 512
#: Scales per pyramid level (σ in level px): three inner ones (ratio 2^(1/3)) and two guards that
#: only tell whether the response peaks within the level's range.
_LEVEL_SIGMAS = 1.2 * 2.0 ** (np.arange(-1, 4) / 3.0)
_DIAMETER_PER_SIGMA = 2.0 * math.sqrt(2.0)
#: Smallest side, px, of a pyramid level that is still searched.
_MIN_LEVEL_SIDE = 8
#: Candidates must respond this many times the white-noise standard deviation of their map.
_SNR_FLOOR = 2.5
#: Largest ratio of the principal curvatures of the response at a blob (1 for a round peak).
_CURVATURE_RATIO_MAX = 6.0
#: Largest σ |∇(G_σ * I)| at a blob, as a fraction of its response (an edge reaches about 1).
_SLOPE_MAX = 0.5
#: A blob overlapping another whose radius is this many times larger, and which responds more
#: strongly, is part of it.
_NESTED_SIZE_RATIO = 1.5
#: Noise test: a blob must respond this many noise standard deviations of its response map.
BLOB_SNR_MIN = 5.0
#: Texture test: where the other polarity has at least ``_TEXTURE_MIN_COUNT`` blobs at the level, a
#: blob must respond ``_POLARITY_MARGIN`` times as strongly as the strongest of them.
_TEXTURE_MIN_COUNT = 20
_POLARITY_MARGIN = 1.25
#: Population test (dense layers): candidates needed of each polarity at a level for medians to compare.
_POPULATION_MIN_COUNT = 200
_POPULATION_MARGIN = 1.15
#: A level whose other polarity has fewer candidates than that is one-sided with this many times more.
_ASYMMETRY = 2.5
#: ``polarity="auto"`` picks bright particles only when their score is this many times the dark one.
_BRIGHT_PREFERENCE = 1.5


@dataclass(frozen=True)
class ParticleScale:
    """Typical particle size of a micrograph, in pixels.

    Attributes
    ----------
    diameter_px : float or None
        Median diameter (2√2 σ of the best LoG scale, equal to the equivalent diameter for a disc)
        of the detected blobs, px of the input image; None when no blob stands out.
    n_blobs : int
        Number of blobs the median is taken over.
    polarity : str
        ``"dark"`` (particles darker than the film: bright field) or ``"bright"``.
    response : float
        Median blob response over the noise standard deviation of its response map.
    confidence : float
        0-1: min(1, n_blobs / 5) × max(0, 1 - interquartile range / median); 0 without blobs.
    quartiles_px : tuple of float or None
        25th and 75th percentiles of the blob diameters, px.
    """

    diameter_px: float | None
    n_blobs: int
    polarity: str
    response: float
    confidence: float
    quartiles_px: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        record = asdict(self)
        record["quartiles_px"] = list(self.quartiles_px) if self.quartiles_px is not None else None
        return record


# Particle size


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor`` × ``factor`` blocks (a ragged last row/column is dropped)."""
    if factor <= 1:
        return image
    rows, cols = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3))


def _robust_std(values: np.ndarray) -> float:
    """Noise standard deviation of a response map: first quartile of |value - median| / 0.3186.

    On a subsample of about 4000 values. Unlike the median absolute deviation it still measures
    the noise while particles and their surroundings fill up to about half the map.
    """
    step = max(1, int(math.sqrt(values.size / 4096)))
    sample = values[::step, ::step].ravel()
    return float(np.percentile(np.abs(sample - np.median(sample)), 25) / 0.3186)


def pixel_noise(level: np.ndarray) -> float:
    """White pixel-noise standard deviation of an image, in its intensity units (robust to edges and blobs).

    MAD of each pixel minus the mean of its 4 neighbours, on about 4096 pixels spread over the image.
    """
    step = max(1, int(math.sqrt(level.size / 4096)))
    centre = level[1:-1:step, 1:-1:step]
    rows, cols = centre.shape
    neighbours = (level[0:-2:step, 1:-1:step][:rows, :cols] + level[2::step, 1:-1:step][:rows, :cols]
                  + level[1:-1:step, 0:-2:step][:rows, :cols] + level[1:-1:step, 2::step][:rows, :cols])
    residual = (centre - 0.25 * neighbours).ravel()
    # For white noise of variance v the residual has variance 1.25 v.
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))) / math.sqrt(1.25))


@lru_cache(maxsize=16)
def _level_filters(shape: tuple[int, int]):
    """Padding, FFT shape and the Gaussian and scale-normalised LoG transfer functions for a level."""
    pad = int(math.ceil(4 * _LEVEL_SIGMAS[-1]))
    fft_shape = tuple(sfft.next_fast_len(n + 2 * pad, real=True) for n in shape)
    q2 = np.fft.fftfreq(fft_shape[0])[:, None] ** 2 + np.fft.rfftfreq(fft_shape[1])[None, :] ** 2
    gaussians = np.exp(-2.0 * math.pi**2 * _LEVEL_SIGMAS[:, None, None] ** 2 * q2).astype(np.float32)
    laplacians = (-4.0 * math.pi**2 * _LEVEL_SIGMAS[:, None, None] ** 2 * q2 * gaussians).astype(np.float32)
    return pad, fft_shape, gaussians, laplacians


def _level_responses(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ²∇²(G_σ * level) at :data:`_LEVEL_SIGMAS`, and G_σ * level at the middle one of them.

    One forward FFT of the level, reflect-padded against wrap-around; float32 throughout.
    """
    pad, fft_shape, gaussians, laplacians = _level_filters(level.shape)
    padded = np.pad((level - level.mean()).astype(np.float32), pad, mode="reflect")
    spectrum = sfft.rfft2(padded, s=fft_shape)
    crop = (slice(pad, pad + level.shape[0]), slice(pad, pad + level.shape[1]))
    responses = np.empty((len(laplacians),) + level.shape, np.float32)
    for j, transfer in enumerate(laplacians):
        responses[j] = sfft.irfft2(spectrum * transfer, s=fft_shape)[crop]
    smoothed = sfft.irfft2(spectrum * gaussians[2], s=fft_shape)[crop]
    return responses, smoothed


def _local_maxima(values: np.ndarray) -> np.ndarray:
    """Pixels not below their 8 neighbours (strictly above those earlier in raster order), borders excluded."""
    centre = values[1:-1, 1:-1]
    peak = np.zeros(values.shape, bool)
    inner = np.ones(centre.shape, bool)
    rows, cols = values.shape
    for n, (dy, dx) in enumerate(((-1, -1), (-1, 0), (-1, 1), (0, -1), (1, 1), (1, 0), (1, -1), (0, 1))):
        other = values[1 + dy:rows - 1 + dy, 1 + dx:cols - 1 + dx]
        inner &= (centre > other) if n < 4 else (centre >= other)
    peak[1:-1, 1:-1] = inner
    return peak


def _is_round(responses: np.ndarray, j: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Whether the response maximum at each point is a rounded peak rather than a ridge.

    The edge of a large particle gives, at small scales, a ridge of response along its outline on
    which noise makes local maxima; there one principal curvature of the response map is much
    smaller than the other. Keep points where the ratio of the curvatures is under
    :data:`_CURVATURE_RATIO_MAX` (the test of Lowe's SIFT detector: trace² / det < (r + 1)² / r).
    """
    def at(dy, dx):  # candidates are never on the outermost rows and columns
        return responses[j, ys + dy, xs + dx]

    centre = at(0, 0)
    d_yy = at(-1, 0) - 2 * centre + at(1, 0)
    d_xx = at(0, -1) - 2 * centre + at(0, 1)
    d_xy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    trace, det = d_yy + d_xx, d_yy * d_xx - d_xy**2
    ratio = _CURVATURE_RATIO_MAX
    return (det > 0) & (trace**2 < (ratio + 1) ** 2 / ratio * det)


def _is_flat(smoothed: np.ndarray, response: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Whether σ |∇(G_σ * I)| at each point is under :data:`_SLOPE_MAX` times the response there.

    The smoothed image (at the level's middle scale σ) is flat at the centre of a blob; beside an
    edge, where the other tests can still find maxima along a large particle's outline, it is
    about as steep as the response.
    """
    d_y = 0.5 * (smoothed[ys + 1, xs] - smoothed[ys - 1, xs])
    d_x = 0.5 * (smoothed[ys, xs + 1] - smoothed[ys, xs - 1])
    return _LEVEL_SIGMAS[2] * np.hypot(d_y, d_x) < _SLOPE_MAX * np.abs(response)


def _level_blobs(responses: np.ndarray, smoothed: np.ndarray, noise: np.ndarray, white: np.ndarray,
                 sign: float) -> dict:
    """Blobs of one polarity at one pyramid level, in level pixels: y, x, σ, response, snr.

    ``noise`` is the noise standard deviation of each response map, ``white`` its lower bound
    from the pixel noise; candidates must exceed :data:`_SNR_FLOOR` times the latter.
    """
    if sign > 0:
        best = np.maximum(np.maximum(responses[1], responses[2]), responses[3])
    else:
        best = -np.minimum(np.minimum(responses[1], responses[2]), responses[3])
    # Maxima on the outermost rows and columns are left out: they belong to blobs cut by the image
    # edge, which the reflecting padding doubles, so their size is not measured.
    ys, xs = np.nonzero(_local_maxima(best) & (best > _SNR_FLOOR * white[1:-1].min()))
    peak = best[ys, xs]
    keep = (peak > sign * responses[0, ys, xs]) & (peak >= sign * responses[-1, ys, xs])
    ys, xs = ys[keep], xs[keep]
    j = np.argmax(sign * responses[1:-1, ys, xs], axis=0) + 1
    centre = sign * responses[j, ys, xs]
    keep = (centre >= _SNR_FLOOR * white[j]) & _is_round(responses, j, ys, xs)
    keep[keep] = _is_flat(smoothed, centre[keep], ys[keep], xs[keep])
    ys, xs, j, centre = ys[keep], xs[keep], j[keep], centre[keep]
    shift = parabola_vertex(sign * responses[j - 1, ys, xs], centre, sign * responses[j + 1, ys, xs])
    offset_y = parabola_vertex(best[ys - 1, xs], centre, best[ys + 1, xs])
    offset_x = parabola_vertex(best[ys, xs - 1], centre, best[ys, xs + 1])
    return {"y": ys + offset_y, "x": xs + offset_x, "sigma": _LEVEL_SIGMAS[j] * 2.0 ** (shift / 3.0),
            "response": centre, "snr": centre / noise[j]}


def find_blobs(image, max_diameter_px: float | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Candidate blobs of both polarities in scale space.

    A candidate is a spatial maximum of the best scale-normalised LoG response over the inner
    scales of a pyramid level, not on the level's outermost rows and columns, whose response is
    highest at an inner scale, exceeds :data:`_SNR_FLOOR` white-noise standard deviations, is round
    (:func:`_is_round`) and is not beside an edge (:func:`_is_flat`). Scale and centre are refined
    by parabolas. :func:`particle_scale` then keeps the significant ones (:func:`_significant`).

    Parameters
    ----------
    image : array_like
        2D image, rows along y; searched as it is.
    max_diameter_px : float, optional
        Largest diameter searched, px; default 3/4 of the shorter side.

    Returns
    -------
    dict
        ``{"dark": blobs, "bright": blobs}``, each a dict of equal-length arrays: ``y``, ``x``
        (px), ``diameter_px`` (2√2 σ), ``response`` (σ²∇²(G_σ * I) with the polarity's sign, image
        units), ``snr`` (response over the robust noise of its response map) and ``level``.
    """
    image = as_image(image)
    if max_diameter_px is None:
        max_diameter_px = 0.75 * min(image.shape)
    max_sigma = max_diameter_px / _DIAMETER_PER_SIGMA
    found = {"dark": [], "bright": []}
    level, k, previous_noise = image, 0, None
    floor = 1e-6 * max(float(np.ptp(image)), 1e-300)
    while min(level.shape) >= _MIN_LEVEL_SIDE and 2**k * _LEVEL_SIGMAS[1] <= max_sigma:
        responses, smoothed = _level_responses(level)
        noise = np.array([max(_robust_std(r), floor) for r in responses], np.float32)
        # Noise does not grow from one level to the next (it halves for white noise); where a few
        # large particles fill a coarse level, its own spread measures them, not the noise.
        if previous_noise is not None:
            noise = np.minimum(noise, previous_noise)
        previous_noise = noise
        # White noise of standard deviation n per pixel gives σ²∇²G_σ responses of n / (σ √(2π)).
        white = np.minimum(noise, pixel_noise(level) / (_LEVEL_SIGMAS * math.sqrt(2 * math.pi)))
        for sign, polarity in ((1.0, "dark"), (-1.0, "bright")):
            blobs = _level_blobs(responses, smoothed, noise, white, sign)
            scale = 2.0**k
            # Block means of side 2^k blur like a box of variance (4^k - 1) / 12 full-resolution px².
            sigma_full = np.sqrt((scale * blobs["sigma"]) ** 2 + (scale**2 - 1) / 12.0)
            found[polarity].append({"y": (blobs["y"] + 0.5) * scale - 0.5, "x": (blobs["x"] + 0.5) * scale - 0.5,
                                    "diameter_px": _DIAMETER_PER_SIGMA * sigma_full,
                                    "response": blobs["response"].astype(float), "snr": blobs["snr"].astype(float),
                                    "level": np.full(blobs["y"].size, k)})
        level, k = block_mean(level, 2), k + 1
    keys = ("y", "x", "diameter_px", "response", "snr", "level")
    return {polarity: {key: np.concatenate([part[key] for part in parts]) if parts else np.empty(0) for key in keys}
            for polarity, parts in found.items()}


def _not_nested(blobs: dict[str, np.ndarray], chosen: np.ndarray) -> np.ndarray:
    """The chosen blobs that do not overlap a clearly larger chosen blob that responds more strongly.

    Inside a large particle, near its outline, the small-scale response can have maxima that pass
    the other tests; they are parts of the particle, not particles.
    """
    n = chosen.size
    if n < 2:
        return chosen
    centres = np.column_stack([blobs["y"][chosen], blobs["x"][chosen]])
    radius, response = 0.5 * blobs["diameter_px"][chosen], blobs["response"][chosen]
    # Overlap of the two discs counts: fragments of an outline sit about one radius out.
    near = cKDTree(centres).query_ball_point(centres, radius * (1.0 + 1.0 / _NESTED_SIZE_RATIO),
                                              return_sorted=False)
    counts = np.fromiter((len(found) for found in near), np.intp, n)
    container = np.repeat(np.arange(n), counts)
    contained = np.fromiter(itertools.chain.from_iterable(near), np.intp, int(counts.sum()))
    distance = np.hypot(*(centres[container] - centres[contained]).T)
    nested = ((radius[container] > _NESTED_SIZE_RATIO * radius[contained])
              & (distance < radius[container] + radius[contained]) & (response[container] > response[contained]))
    keep = np.ones(n, bool)
    keep[contained[nested]] = False
    return chosen[keep]


def _significant(blobs: dict[str, np.ndarray], opposite: dict[str, np.ndarray]) -> np.ndarray:
    """Which blobs stand out from the noise and from the texture of the film, level by level.

    Noise and the speckle of an amorphous film make dark and bright blobs alike; particles make
    blobs of one polarity. So, at each pyramid level:

    * with at least :data:`_TEXTURE_MIN_COUNT` blobs of the opposite polarity above
      :data:`_SNR_FLOOR` (fine levels of a noisy image), a blob must respond
      :data:`_POLARITY_MARGIN` times more strongly than the strongest of them, and at least two
      must: the texture is measured directly;
    * otherwise, with at least :data:`_POPULATION_MIN_COUNT` candidates of this polarity, whose
      median response is :data:`_POPULATION_MARGIN` times that of as many of the other polarity, a
      blob must respond more strongly than 90 % of the latter (with far fewer of the other, all pass);
    * otherwise it needs :data:`BLOB_SNR_MIN`.
    """
    passed = blobs["snr"] >= BLOB_SNR_MIN
    for level in np.unique(blobs["level"]):
        here = blobs["level"] == level
        # Counts and texture only from blobs above the floor in units of the map's own spread.
        texture = np.sort(opposite["response"][(opposite["level"] == level) & (opposite["snr"] >= _SNR_FLOOR)])
        if texture.size >= _TEXTURE_MIN_COUNT:
            stronger = blobs["response"][here] > _POLARITY_MARGIN * texture[-1]
            # Where blobs of both polarities abound, a single one beyond the texture is its tail.
            passed[here] = stronger if np.count_nonzero(stronger) >= 2 else False
        elif np.count_nonzero(here) >= _POPULATION_MIN_COUNT:
            # Dense layers: particles and the gaps between them fill the maps, both polarities
            # abound and the maps' spread measures them, not the noise. Particles respond more
            # strongly than the gaps as a population, and each more strongly than most gaps.
            others = np.sort(opposite["response"][opposite["level"] == level])
            if others.size < _POPULATION_MIN_COUNT:
                passed[here] = np.count_nonzero(here) >= _ASYMMETRY * max(others.size, _TEXTURE_MIN_COUNT)
            elif np.median(blobs["response"][here]) >= _POPULATION_MARGIN * np.median(others):
                passed[here] = blobs["response"][here] > others[int(0.9 * (others.size - 1))]
    return passed


def _select(blobs: dict[str, np.ndarray], opposite: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the significant blobs that are not parts of larger ones."""
    return _not_nested(blobs, np.nonzero(_significant(blobs, opposite))[0])


def _summarise(blobs: dict[str, np.ndarray], chosen: np.ndarray, polarity: str, factor: float) -> ParticleScale:
    if chosen.size == 0:
        return ParticleScale(None, 0, polarity, 0.0, 0.0, None)
    diameters = blobs["diameter_px"][chosen] * factor
    median = float(np.median(diameters))
    q25, q75 = np.percentile(diameters, [25, 75])
    confidence = min(1.0, chosen.size / 5.0) * max(0.0, 1.0 - (q75 - q25) / median)
    return ParticleScale(median, int(chosen.size), polarity, float(np.median(blobs["snr"][chosen])),
                         float(confidence), (float(q25), float(q75)))


def _score(snr: np.ndarray) -> float:
    """Evidence for a polarity: the summed signal-to-noise ratio of its chosen blobs."""
    return float(snr.sum())


def particle_scale(image, polarity: str = "auto", *, max_diameter_px: float | None = None,
                   work_side_px: int = WORK_SIDE_PX) -> ParticleScale:
    """Typical particle diameter in pixels, from scale-space blob detection.

    Parameters
    ----------
    image : array_like
        2D micrograph (rows along y), any real dtype, at least 8 px on a side.
    polarity : {"auto", "dark", "bright"}
        Particle contrast. ``"auto"`` compares the signal-to-noise ratio of the three strongest
        significant blobs of each polarity and takes ``"bright"`` only when it is 1.5 times the dark.
    max_diameter_px : float, optional
        Largest diameter searched, px of ``image``; default 3/4 of the shorter side.
    work_side_px : int
        Images with a longer side are block-averaged by an integer factor to at most this side.
        When that leaves particles under 8 px (or finds none), a central full-resolution crop of
        this side is searched as well and its answer used.

    Returns
    -------
    ParticleScale

    Raises
    ------
    NanofindInputError
        Not a 2D finite array, too small, or an unknown polarity.
    """
    image = as_image(image)
    if polarity not in ("auto", "dark", "bright"):
        raise NanofindInputError(f"must be 'auto', 'dark' or 'bright', got {polarity!r}", "polarity")
    if max_diameter_px is None:
        max_diameter_px = 0.75 * min(image.shape)
    factor = max(1, math.ceil(max(image.shape) / work_side_px))
    result = _scale_at(block_mean(image, factor), polarity, max_diameter_px / factor, factor)
    if factor > 1 and (result.diameter_px is None or result.diameter_px < 8 * factor):
        rows, cols = min(work_side_px, image.shape[0]), min(work_side_px, image.shape[1])
        r0, c0 = (image.shape[0] - rows) // 2, (image.shape[1] - cols) // 2
        crop = image[r0:r0 + rows, c0:c0 + cols]
        fine = _scale_at(crop, polarity, min(max_diameter_px, 8.0 * factor), 1)
        if fine.diameter_px is not None:
            result = fine
    return result


def _scale_at(image: np.ndarray, polarity: str, max_diameter_px: float, factor: int) -> ParticleScale:
    if np.ptp(image) == 0:
        return ParticleScale(None, 0, "dark" if polarity == "auto" else polarity, 0.0, 0.0, None)
    blobs = find_blobs(image, max_diameter_px)
    chosen = {"dark": _select(blobs["dark"], blobs["bright"]), "bright": _select(blobs["bright"], blobs["dark"])}
    if polarity == "auto":
        scores = {sign: _score(blobs[sign]["snr"][chosen[sign]]) for sign in chosen}
        polarity = "bright" if scores["bright"] > _BRIGHT_PREFERENCE * scores["dark"] else "dark"
    return _summarise(blobs[polarity], chosen[polarity], polarity, float(factor))


def resample_factor(diameter_px: float | None, target_px: float = 48.0,
                    limits: tuple[float, float] = (0.125, 4.0)) -> float:
    """Zoom factor that brings particles of ``diameter_px`` to ``target_px``, clipped to ``limits``.

    Parameters
    ----------
    diameter_px : float or None
        Measured typical diameter, px; None (unknown) gives 1.0.
    target_px : float
        Diameter the model works best at, px.
    limits : (float, float)
        Smallest and largest zoom allowed.

    Returns
    -------
    float
        Factor to multiply the image size by (> 1 enlarges).
    """
    if diameter_px is None:
        return 1.0
    if not diameter_px > 0 or not target_px > 0:
        raise NanofindInputError(f"diameters must be positive, got {diameter_px} and {target_px}", "diameter_px")
    return float(np.clip(target_px / diameter_px, limits[0], limits[1]))
