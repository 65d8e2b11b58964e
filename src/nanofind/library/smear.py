"""Tilt smear: a crystal slightly off its zone draws each column as a short line.

A slab t thick tilted by θ about an in-plane axis projects every column's atoms onto a segment
t·tan θ long, at right angles to the tilt axis (2° over 80 Å: 2.8 Å, more than many column
spacings). Its image is the untilted image convolved with that uniform line, whose transfer function
is sinc(L k·n) (L the length in Å, n its direction, k the spatial frequency in 1/Å): spots along n
fade, spots across it keep their strength. A library entry rendered on its zone meets a tilted query
far better once it is smeared the same way, so the registration fits the line to each entry
(:func:`fit_smear`) and scores the smeared entry (:func:`smeared`).

Angles run from +x (columns) towards +y (rows, downwards), as everywhere in the library.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from nanofind.library.register import _hann, _normalised

#: Smear lengths tried, Å, coarsely (0 keeps the entry as it is; 3 Å covers 2° of tilt over 85 Å) ...
LENGTHS_A = np.arange(0.0, 3.01, 0.5)
#: ... and directions, degrees over 180° (a line has no sense); then the best point's neighbours at
#: half these steps.
ANGLES_DEG = np.arange(0.0, 180.0, 15.0)
#: Fourier coefficients of the entry that the fit weighs: its strongest, the lattice's spots.
COEFFICIENTS = 1000


def line_transfer(fy: np.ndarray, fx: np.ndarray, length_A, angle_deg: float) -> np.ndarray:
    """Transfer function of a uniform line ``length_A`` long at ``angle_deg``, at frequencies (fy, fx) 1/Å.

    ``length_A`` may be an array: the result then has its shape in front.
    """
    t = np.radians(angle_deg)
    return np.sinc(np.multiply.outer(length_A, fx * np.cos(t) + fy * np.sin(t)))


def fit_smear(query: np.ndarray, entry: np.ndarray, pixel_size_A: float) -> tuple[float, float]:
    """The line (length Å, angle deg) that, smearing ``entry``, makes it correlate best with ``query``.

    Both are registered images of one shape at ``pixel_size_A``. The correlation of the smeared
    entry with the query, Σ Re(Q* E)·S / √(Σ |E|²·S²) over the entry's :data:`COEFFICIENTS`
    strongest Fourier coefficients (both images standardised and Hann-tapered), is evaluated on the
    grid :data:`LENGTHS_A` × :data:`ANGLES_DEG`, then at half its steps around the best point, which is
    returned (length 0 when no smear helps; lengths stay within the grid's).
    """
    if query.shape != entry.shape:
        raise ValueError(f"query {query.shape} and entry {entry.shape} differ in shape")
    q = sfft.rfft2(_normalised(query) * _hann(query.shape))
    e = sfft.rfft2(_normalised(entry) * _hann(entry.shape))
    fy = np.broadcast_to(sfft.fftfreq(query.shape[0])[:, None] / pixel_size_A, e.shape).ravel()
    fx = np.broadcast_to(sfft.rfftfreq(query.shape[1])[None, :] / pixel_size_A, e.shape).ravel()
    power = (np.abs(e) ** 2).ravel()
    n = min(COEFFICIENTS, power.size - 1)
    strongest = np.argpartition(-power, n)[:n]
    cross = (q.conj() * e).real.ravel()[strongest]
    power, fy, fx = power[strongest], fy[strongest], fx[strongest]

    def best_of(lengths, angles):
        best = (-np.inf, 0.0, 0.0)
        for angle in angles:
            s = line_transfer(fy, fx, lengths, angle)
            corr = (s @ cross) / np.sqrt(np.maximum((s * s) @ power, 1e-30))
            k = int(np.argmax(corr))
            if corr[k] > best[0] + 1e-12:
                best = (float(corr[k]), float(lengths[k]), float(angle))
        return best

    _, length, angle = best_of(LENGTHS_A, ANGLES_DEG)
    half_length = (LENGTHS_A[1] - LENGTHS_A[0]) / 2
    half_angle = (ANGLES_DEG[1] - ANGLES_DEG[0]) / 2
    lengths = np.clip(length + np.array([0.0, -half_length, half_length]), 0.0, LENGTHS_A[-1])
    _, length, angle = best_of(lengths, angle + np.array([0.0, -half_angle, half_angle]))
    return length, angle % 180.0


def smeared(image: np.ndarray, pixel_size_A: float, length_A: float, angle_deg: float) -> np.ndarray:
    """``image`` convolved with a uniform line ``length_A`` long at ``angle_deg`` (edges wrap around)."""
    if length_A <= 0:
        return np.asarray(image, dtype=np.float64)
    fy = sfft.fftfreq(image.shape[0])[:, None] / pixel_size_A
    fx = sfft.rfftfreq(image.shape[1])[None, :] / pixel_size_A
    return sfft.irfft2(sfft.rfft2(image) * line_transfer(fy, fx, length_A, angle_deg), s=image.shape)
