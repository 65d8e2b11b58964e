"""Lattice fringes in a micrograph: whether it shows atomic planes, and at what period.

``nanofind analyze --model auto`` sends a micrograph of unknown pixel size with fringes to the HRTEM
model (:mod:`nanofind.segment.model_choice`); the particle size of the others comes from
:mod:`nanofind.segment.scale`.

Lattice fringes (:func:`lattice_fringes`)
    A crystal along a zone axis modulates the image with periods of a few pixels (d-spacings of
    1.4-4 Å at 0.25-0.7 Å per pixel): sharp spots in the power spectrum. Amorphous carbon, shot
    noise and the contrast transfer function give a smooth spectrum that is, apart from
    astigmatism, isotropic. The power spectra of Hann-windowed 256² tiles spread over the image are
    divided by their (spot-resistant) mean over rings of equal spatial frequency, summed over 3 × 3
    frequency bins (a spot is a few bins wide, a noise bin is not), and searched for their maximum
    in the band of periods :data:`FRINGE_PERIOD_BAND_PX`, in the mean spectrum (fringes spread over
    the field) and in each tile (one crystalline particle in a large field).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from nanofind.errors import NanofindInputError

#: Side of the square tiles whose power spectra are searched for fringes, px (periods up to 30 px
#: lie 8 frequency bins from the centre).
FRINGE_TILE_PX = 256
#: At most this many tiles per image axis (≤ 16 tiles); a 512² image uses 2 × 2.
FRINGE_TILES_PER_AXIS = 4
#: Real-space periods searched for a lattice spot, px.
FRINGE_PERIOD_BAND_PX = (2.2, 30.0)
#: Whitened, 3 × 3-summed spot strength from which fringes count as present (dimensionless). White
#: or correlated noise and fringe-free film reach 4-8 (``benchmarks/bench_scale.py``).
FRINGE_THRESHOLD = 10.0
#: Background floor, as a fraction of the strongest ring background in the band: beyond the
#: information limit or in an interpolated image only leakage and interpolation copies remain.
FRINGE_FLOOR = 1e-2


@dataclass(frozen=True)
class FringeEvidence:
    """Whether a micrograph shows lattice fringes.

    Attributes
    ----------
    present : bool
        ``strength`` ≥ ``threshold``.
    period_px : float or None
        Real-space period of the strongest spectral spot in the band, px (None if nothing to search).
    strength : float
        Spot power over the ring background, both summed over 3 × 3 frequency bins, in the mean
        spectrum or the best tile, whichever is larger (dimensionless; about 1-8 without spots).
    tile_fraction : float
        Fraction of the tiles whose own spectrum passes the threshold (how widespread fringes are).
    period_A : float or None
        ``period_px`` times the pixel size, Å, when the pixel size is known.
    threshold : float
        Threshold used for ``present``.
    n_tiles : int
        Number of tiles searched.
    """

    present: bool
    period_px: float | None
    strength: float
    tile_fraction: float
    period_A: float | None = None
    threshold: float = FRINGE_THRESHOLD
    n_tiles: int = 0

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def as_image(image, field: str = "image") -> np.ndarray:
    """``image`` as a finite float64 2D array of at least 8 × 8 px; NanofindInputError naming ``field`` if not."""
    array = np.asarray(image)
    if array.ndim != 2:
        raise NanofindInputError(f"must be a 2D array (rows along y), got shape {array.shape}", field)
    if min(array.shape) < 8:
        raise NanofindInputError(f"is too small for a scale estimate: shape {array.shape}", field)
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise NanofindInputError("contains non-finite values", field)
    return array


@lru_cache(maxsize=8)
def _tile_geometry(tile: int):
    """Window and frequency layout of a tile's spectrum.

    On the ``rfft2`` half-plane with rows fftshifted: the Hann window, qy and qx (cycles/px), their
    radius, each bin's integer ring index, the band mask, and the row map that gives the column
    left of qx = 0 (power at -q equals power at q, so it is column 1 with rows mirrored).
    """
    hann = np.hanning(tile + 2)[1:-1]
    qy, qx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(tile)), np.fft.rfftfreq(tile), indexing="ij")
    radius = np.hypot(qy, qx)
    rings = np.rint(radius * tile).astype(np.intp).ravel()
    in_band = (radius >= max(1.0 / FRINGE_PERIOD_BAND_PX[1], 2.5 / tile)) & (radius <= 1.0 / FRINGE_PERIOD_BAND_PX[0])
    return np.outer(hann, hann), qy, qx, radius, rings, in_band, (tile - np.arange(tile)) % tile


def _tile_spectra(image: np.ndarray) -> np.ndarray:
    """Power spectra (see :func:`_tile_geometry`) of Hann-windowed tiles spread evenly over the image.

    Tiles are :data:`FRINGE_TILE_PX` (or the largest power of two that fits) on a side, at most
    :data:`FRINGE_TILES_PER_AXIS` per axis, overlapping in images under 4 tiles wide.
    """
    tile = min(FRINGE_TILE_PX, 2 ** int(math.log2(min(image.shape))))
    window = _tile_geometry(tile)[0]
    starts = [np.unique(np.rint(np.linspace(0, side - tile, min(FRINGE_TILES_PER_AXIS, math.ceil(side / tile)))))
              .astype(int) for side in image.shape]
    spectra = np.empty((len(starts[0]) * len(starts[1]), tile, tile // 2 + 1))
    for n, (r, c) in enumerate(itertools.product(*starts)):
        patch = image[r:r + tile, c:c + tile]
        spectrum = sfft.rfft2((patch - patch.mean()) * window)
        spectra[n] = np.fft.fftshift(spectrum.real**2 + spectrum.imag**2, axes=0)
    return spectra


def _pad_half_plane(power: np.ndarray, mirror_rows: np.ndarray) -> np.ndarray:
    """One bin of padding around a half-plane spectrum: the mirrored column left, edge values elsewhere."""
    padded = np.pad(power, 1, mode="edge")
    padded[1:-1, 0] = power[mirror_rows, 1]
    return padded


def _sum3(power: np.ndarray, mirror_rows: np.ndarray) -> np.ndarray:
    """Sum of each 3 × 3 neighbourhood of a half-plane spectrum."""
    padded = _pad_half_plane(power, mirror_rows)
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def _peak(power: np.ndarray, geometry) -> tuple[float, tuple[int, int], np.ndarray]:
    """Strongest whitened 3 × 3-summed spot in the band: (strength, bin, background)."""
    rings, in_band, mirror_rows = geometry[4:]
    flat = power.ravel()
    counts = np.maximum(np.bincount(rings), 1)
    # Ring mean, recomputed five times with values above 3 × the previous mean clipped, so that a
    # spot does not raise its own background (a spot 1000 × the background in a ring of 200 bins
    # is left with a 10 % excess).
    mean = np.bincount(rings, flat) / counts
    for _ in range(5):
        mean = np.bincount(rings, np.minimum(flat, 3.0 * mean[rings])) / counts
    background = np.maximum(mean[rings].reshape(power.shape), FRINGE_FLOOR * float(mean[rings][in_band.ravel()].max()))
    ratio = _sum3(power, mirror_rows) / np.maximum(_sum3(background, mirror_rows), np.finfo(float).tiny)
    ratio = np.where(in_band, ratio, -np.inf)
    peak = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return float(ratio[peak]), peak, background


def _peak_frequency(power: np.ndarray, background: np.ndarray, peak: tuple[int, int], geometry) -> float:
    """Spatial frequency (cycles/px) of a spot, to a fraction of a bin.

    Climbs from the strongest whitened bin to the maximum of the excess power (the background falls
    with frequency, so the two can be a bin or two apart), then fits a parabola to the logarithm of
    the excess along each axis (exact for a Gaussian spot, within ~0.05 bin for a Hann-windowed tone).
    """
    qy, qx, mirror_rows = geometry[1], geometry[2], geometry[6]
    excess = _pad_half_plane(np.maximum(power - background, 0.0), mirror_rows)
    excess = np.log(np.maximum(excess, 1e-30 * max(float(excess.max()), 1e-300)))
    r, c = peak[0] + 1, peak[1] + 1
    for _ in range(4):
        dr, dc = np.unravel_index(int(np.argmax(excess[r - 1:r + 2, c - 1:c + 2])), (3, 3))
        if dr == 1 and dc == 1:
            break
        r, c = min(max(r + dr - 1, 1), excess.shape[0] - 2), min(max(c + dc - 1, 1), excess.shape[1] - 2)
    row = parabola_vertex(excess[r - 1, c], excess[r, c], excess[r + 1, c])
    col = parabola_vertex(excess[r, c - 1], excess[r, c], excess[r, c + 1])
    step = 1.0 / qy.shape[0]
    return math.hypot(qy[r - 1, 0] + float(row) * step, qx[0, c - 1] + float(col) * step)


def lattice_fringes(image, pixel_size_A: float | None = None, threshold: float = FRINGE_THRESHOLD) -> FringeEvidence:
    """Detect lattice fringes: a sharp spot in the whitened power spectrum of the mean or of one tile.

    Parameters
    ----------
    image : array_like
        2D micrograph (rows along y), any real dtype, at least 8 px on a side (256 px or more to
        search periods up to 30 px).
    pixel_size_A : float, optional
        Pixel size, Å; only used for ``period_A``.
    threshold : float
        Spot strength (dimensionless) from which fringes count as present.

    Returns
    -------
    FringeEvidence

    Raises
    ------
    NanofindInputError
        Not a finite 2D array, too small, or a non-positive pixel size.
    """
    image = as_image(image)
    if pixel_size_A is not None and not pixel_size_A > 0:
        raise NanofindInputError(f"must be positive, got {pixel_size_A}", "pixel_size_A")
    spectra = _tile_spectra(image)
    geometry = _tile_geometry(spectra.shape[1])
    mean_power = spectra.mean(axis=0)
    if not geometry[5].any() or not np.any(mean_power[geometry[5]] > 0):
        return FringeEvidence(False, None, 0.0, 0.0, None, threshold, len(spectra))
    tiles = [(power, *_peak(power, geometry)) for power in spectra] if len(spectra) > 1 else []
    found = [(mean_power, *_peak(mean_power, geometry)), *tiles]
    tile_fraction = float(np.mean([spot[1] >= threshold for spot in (tiles or found)]))
    power, strength, peak, background = max(found, key=lambda spot: spot[1])
    period_px = 1.0 / _peak_frequency(power, background, peak, geometry)
    return FringeEvidence(bool(strength >= threshold), period_px, strength, tile_fraction,
                          period_px * pixel_size_A if pixel_size_A is not None else None, threshold, len(spectra))


def parabola_vertex(below: np.ndarray, centre: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Offset (in steps, within ±0.5) of the vertex of the parabola through three equally spaced values."""
    curvature = below - 2 * centre + above
    safe = np.where(curvature < 0, curvature, -1.0)
    return np.where(curvature < 0, np.clip(0.5 * (below - above) / safe, -0.5, 0.5), 0.0)
