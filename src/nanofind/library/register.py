"""Registration of a query image onto a library entry: in-plane rotation, mirror and translation.

- Rotation: the magnitude of the Fourier transform does not move with the image, and turns with it.
  Resampled on a polar grid (radius × angle), a rotation is a shift along the angle, found by
  cross-correlating the query's and the entry's polar spectra (summed over the radii). The spectrum
  of a real image is symmetric, so the angle is known modulo 180°; both are tried. A mirrored query
  has its polar spectrum reversed in angle.
- Translation: the entry is rendered at that angle on a canvas one cell wider than the query on
  every side, and the query is slid over it (normalised cross-correlation through FFTs); the best
  offset, refined to a fraction of a pixel, places the entry under the query.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

#: Angular samples of the polar spectrum over 180° (0.25° each).
ANGLES = 720
#: Spatial-frequency band of the polar spectrum, 1/Å: from a few cells to about the columns' blur.
K_MIN_INV_A = 0.12
K_MAX_INV_A = 1.1


def _hann(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))


def polar_spectrum(image: np.ndarray, pixel_size_A: float, *, radii: int = 64, angles: int = ANGLES) -> np.ndarray:
    """|FFT| of the windowed image on a (radii, angles) grid over [K_MIN, K_MAX] 1/Å and 0…180°.

    Angles run from +x towards +y (rows down). Each radius is standardised, so that every ring of
    spots counts, not only the strongest.
    """
    x = np.asarray(image, dtype=np.float64)
    x = (x - x.mean()) * _hann(x.shape)
    h, w = x.shape
    size = max(h, w)
    spectrum = np.abs(np.fft.fftshift(sfft.fft2(x, s=(size, size))))
    k_nyquist = 0.5 / pixel_size_A
    k = np.linspace(K_MIN_INV_A, min(K_MAX_INV_A, 0.95 * k_nyquist), radii)
    theta = np.arange(angles) * (math.pi / angles)
    kk, tt = np.meshgrid(k, theta, indexing="ij")
    # after fftshift, frequency (kx, ky) sits at pixel (size//2 + ky·size·p, size//2 + kx·size·p)
    rows = size // 2 + kk * np.sin(tt) * size * pixel_size_A
    cols = size // 2 + kk * np.cos(tt) * size * pixel_size_A
    polar = ndi.map_coordinates(spectrum, [rows, cols], order=1)
    polar = polar - polar.mean(axis=1, keepdims=True)
    return polar / np.maximum(polar.std(axis=1, keepdims=True), 1e-12)


def rotation_candidates(query_polar: np.ndarray, entry_polar: np.ndarray, *,
                        keep: int = 1) -> list[tuple[float, bool, float]]:
    """The rotations (deg, mirror, score) that best turn the entry onto the query, best first.

    ``score`` is the mean correlation of the polar spectra at that angle (about 1 for a perfect fit).
    Both spectra have one grid, of any number of angles over 180°.
    """
    angles = query_polar.shape[1]
    out = []
    f_entry = sfft.rfft(entry_polar, axis=1)
    for mirror in (False, True):
        q = query_polar[:, ::-1] if mirror else query_polar
        if mirror:  # the reversed grid starts at 180° − step: put 0° back at index 0
            q = np.roll(q, 1, axis=1)
        corr = sfft.irfft(sfft.rfft(q, axis=1) * f_entry.conj(), n=angles, axis=1).mean(axis=0) / angles
        k = int(np.argmax(corr))
        a, b, c = corr[(k - 1) % angles], corr[k], corr[(k + 1) % angles]
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom < 0 else 0.0
        angle = (k + offset) * 180.0 / angles
        # the entry's pattern at angle φ matches the query: rotating the entry by φ aligns it
        out.append((angle, mirror, float(b)))
    out.sort(key=lambda t: -t[2])
    return out[:keep]


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / max(float(x.std()), 1e-12)


class Canvas:
    """An image that windows of one size are slid over; its transforms are kept for every window.

    ``locate(window)`` gives the offset (row, col) of the window inside the canvas with the highest
    normalised correlation, refined to a fraction of a pixel, and that correlation (−1…1).
    """

    def __init__(self, canvas: np.ndarray, window_shape: tuple[int, int]):
        c = np.asarray(canvas, dtype=np.float64)
        self.shape = c.shape
        self.window_shape = tuple(window_shape)
        h, w = self.window_shape
        self.f_canvas = sfft.rfft2(c)
        window = np.zeros(self.shape)
        window[:h, :w] = 1.0
        f_window = sfft.rfft2(window).conj()
        n = h * w
        local_sum = sfft.irfft2(self.f_canvas * f_window, s=self.shape)
        local_sq = sfft.irfft2(sfft.rfft2(c * c) * f_window, s=self.shape)
        self.scale = 1.0 / (n * np.sqrt(np.maximum(local_sq / n - (local_sum / n) ** 2, 1e-12)))

    def locate(self, window: np.ndarray) -> tuple[float, float, float]:
        """Best offset (row, col) of ``window`` (of ``window_shape``) and its normalised correlation."""
        q = _normalised(window)
        h, w = q.shape
        big_h, big_w = self.shape
        numerator = sfft.irfft2(self.f_canvas * sfft.rfft2(q, s=self.shape).conj(), s=self.shape)
        valid = (numerator * self.scale)[: big_h - h + 1, : big_w - w + 1]
        r, k = np.unravel_index(int(np.argmax(valid)), valid.shape)
        rows, cols = valid.shape
        # a peak on the edge of the valid offsets has no neighbour outside: it is not refined
        dr = _parabola(valid[r - 1, k], valid[r, k], valid[r + 1, k]) if 0 < r < rows - 1 else 0.0
        dk = _parabola(valid[r, k - 1], valid[r, k], valid[r, k + 1]) if 0 < k < cols - 1 else 0.0
        return r + dr, k + dk, float(valid[r, k])


def _parabola(a: float, b: float, c: float) -> float:
    denom = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0
