"""The amorphous carbon film under a low-magnification bright-field field: its thickness map, Å.

Smooth thickness variation (a Gaussian random field), the atomic granularity of each pixel's carbon
column, holes (vacuum) and a film edge (a half-plane of vacuum); used by
:mod:`nanofind.simulate.brightfield_recipe` (see docs/simulation.md, "Low-magnification bright field").
Arrays have rows along y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Avogadro's number × 1e-24 (converts g/cm³ ÷ g/mol to atoms per Å³).
_AVOGADRO_PER_A3 = 0.602214076
_CARBON_MOLAR_MASS = 12.011


def smooth_random_field(shape: tuple[int, int], smoothing_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field of unit expected variance: white noise smoothed by a Gaussian of ``smoothing_px`` rms.

    Normalised by its expected, not its sample, variance, so a field much smoother than the grid is
    nearly a constant offset rather than an amplified gradient.
    """
    from scipy import fft

    qy, qx = np.fft.fftfreq(shape[0]), np.fft.rfftfreq(shape[1])
    gy, gx = (np.exp(-2 * math.pi**2 * smoothing_px**2 * q**2).astype(np.float32) for q in (qy, qx))
    spectrum = fft.rfft2(rng.standard_normal(shape, dtype=np.float32), workers=1) * gy[:, None] * gx[None, :]
    values = fft.irfft2(spectrum, s=shape, workers=1)
    full_x = np.exp(-4 * math.pi**2 * smoothing_px**2 * np.fft.fftfreq(shape[1]) ** 2)
    variance = float(np.mean(gy**2) * np.mean(full_x))  # Parseval: Σ h² = mean |H|² (separable)
    return (values / math.sqrt(variance)).astype(np.float32)


@dataclass(frozen=True)
class Film:
    """An amorphous carbon support film (concrete values; lengths in Å unless named px)."""

    thickness_A: float  #: mean thickness
    density_g_cm3: float = 2.0
    variation: float = 0.1  #: rms of the smooth thickness variation, fraction of the mean
    smoothing_A: float = 500.0  #: rms width of the Gaussian that smooths it
    granularity: float = 1.0  #: × the atom-counting noise of a column of one pixel's area
    holes: tuple[tuple[float, float, float, float, float], ...] = field(default=())  #: row, col, semi-axes px, deg
    edge: tuple[float, float, float, float] | None = None  #: vacuum normal deg, offset px, waviness px, period px


def film_thickness_A(film: Film, shape: tuple[int, int], pixel_size_A: float, rng: np.random.Generator) -> np.ndarray:
    """Film thickness (Å) at each pixel: smooth variation, atomic granularity, zero in holes and beyond the edge.

    The granularity is the relative spread of the number of carbon atoms in one pixel's column,
    ``1/sqrt(n t a²)`` (n atoms per Å³ from the density, t the local thickness, a the pixel size),
    times ``granularity``; it is what gives the film its speckle once defocus turns phase into contrast.
    """
    smooth = film.thickness_A * (1 + film.variation * smooth_random_field(shape, film.smoothing_A / pixel_size_A,
                                                                           rng))
    smooth = np.clip(smooth, 0, None)
    atoms_per_A3 = film.density_g_cm3 * _AVOGADRO_PER_A3 / _CARBON_MOLAR_MASS
    atoms = np.maximum(atoms_per_A3 * smooth * pixel_size_A**2, 1.0)
    t = smooth * (1 + film.granularity * rng.standard_normal(shape, dtype=np.float32) / np.sqrt(atoms))
    if not film.holes and film.edge is None:
        return np.clip(t, 0, None).astype(np.float32)
    rows, cols = np.ogrid[0:shape[0], 0:shape[1]]
    rows, cols = rows.astype(np.float32) + 0.5, cols.astype(np.float32) + 0.5
    vacuum = np.zeros(shape, bool)
    for r0, c0, a, b, deg in film.holes:
        ca, sa = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        u, v = (cols - c0) * ca + (rows - r0) * sa, -(cols - c0) * sa + (rows - r0) * ca
        vacuum |= (u / a) ** 2 + (v / b) ** 2 <= 1
    if film.edge is not None:
        deg, offset, wave, period = film.edge
        ca, sa = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        u = (cols - shape[1] / 2) * ca + (rows - shape[0] / 2) * sa  # along the vacuum side's normal
        s = -(cols - shape[1] / 2) * sa + (rows - shape[0] / 2) * ca  # along the edge
        vacuum |= u > offset + wave * np.sin(2 * math.pi * s / period + rng.uniform(0, 2 * math.pi))
    return np.where(vacuum, 0, np.clip(t, 0, None)).astype(np.float32)
