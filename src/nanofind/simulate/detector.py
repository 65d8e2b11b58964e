"""From image intensity on the simulation grid to detector counts.

Every function works on plain arrays with rows along y (``image[row, column]``) and takes an
explicit ``numpy.random.Generator`` where it draws. The order in :class:`Detector` follows the
physics: illumination gradient → binning to detector pixels → drift blur → geometric
distortion → Poisson arrival of electrons (dose, e/Å²) → scintillator/optics MTF (which blurs
the shot noise too) → gain and read noise → X-ray spikes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import map_coordinates


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` × ``factor`` blocks (pixel-area integration onto a coarser detector)."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"binning factor must be >= 1, got {factor}")
    if factor == 1:
        return image
    ny, nx = image.shape[-2:]
    if ny % factor or nx % factor:
        raise ValueError(f"image shape {image.shape} is not divisible by the binning factor {factor}")
    return image.reshape(image.shape[:-2] + (ny // factor, factor, nx // factor, factor)).mean(axis=(-3, -1))


def frequency_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(qy, qx) in cycles per pixel for ``numpy.fft.fft2`` of an image of ``shape``."""
    return np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]


def mtf(shape: tuple[int, int], half_frequency: float, floor: float = 0.0) -> np.ndarray:
    """Lorentzian detector MTF, ``(1 − floor)/(1 + (q/q½)²) + floor``, on the FFT grid.

    ``half_frequency`` q½ is where the Lorentzian part falls to one half, as a fraction of the
    Nyquist frequency (0.5 cycles/pixel); scintillator-coupled cameras have q½ ≈ 0.3–0.6,
    ``floor`` is the share transferred unblurred (direct detection: near 1).
    """
    qy, qx = frequency_grid(shape)
    q = np.hypot(qy, qx) / 0.5
    return (1.0 - floor) / (1.0 + (q / half_frequency) ** 2) + floor


def apply_transfer(image: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Multiply the image's spectrum by a real transfer function (same shape, FFT layout)."""
    return np.fft.ifft2(np.fft.fft2(image) * transfer).real


def drift_transfer(shape: tuple[int, int], length_px: float, angle_deg: float) -> np.ndarray:
    """Transfer function of uniform linear drift of ``length_px`` pixels during the exposure."""
    qy, qx = frequency_grid(shape)
    a = np.radians(angle_deg)
    return np.sinc(length_px * (qx * np.cos(a) + qy * np.sin(a)))


def illumination_gradient(shape: tuple[int, int], amplitude: float, angle_deg: float) -> np.ndarray:
    """Multiplicative linear illumination ramp, 1 ± ``amplitude`` across the field."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    a = np.radians(angle_deg)
    ramp = (x - (nx - 1) / 2) / max(nx, 1) * np.cos(a) + (y - (ny - 1) / 2) / max(ny, 1) * np.sin(a)
    return 1.0 + 2.0 * amplitude * ramp


def smooth_displacement(shape: tuple[int, int], amplitude_px: float, correlation_px: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Random smooth displacement field (2, ny, nx) in pixels, rms ``amplitude_px`` per axis."""
    # Gaussian smoothing of white noise, done in Fourier space: correlation lengths are hundreds of pixels
    qy, qx = frequency_grid(shape)
    kernel = np.exp(-2 * np.pi**2 * correlation_px**2 * (qy**2 + qx**2))
    field = np.stack([apply_transfer(rng.standard_normal(shape), kernel) for _ in range(2)])
    # rms about zero, not about the mean: a field smoother than the image is mostly a shift
    rms = np.sqrt((field.reshape(2, -1) ** 2).mean(axis=1))[:, None, None]
    return field / np.where(rms > 0, rms, 1.0) * amplitude_px


def warp(image: np.ndarray, displacement: np.ndarray, order: int = 1) -> np.ndarray:
    """Resample so that output[y, x] = input[(y, x) + displacement[:, y, x]] (order 0 for label maps)."""
    ny, nx = image.shape
    rows, cols = np.mgrid[0:ny, 0:nx].astype(float)
    coords = np.stack([rows + displacement[0], cols + displacement[1]])
    return map_coordinates(image, coords, order=order, mode="nearest").astype(image.dtype, copy=False)


def warp_points(points_rc: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Where points (row, col) of the input land after :func:`warp` (first order in the field)."""
    if len(points_rc) == 0:
        return points_rc
    d = np.stack([map_coordinates(displacement[k], points_rc.T, order=1, mode="nearest") for k in range(2)], axis=1)
    return points_rc - d


def poisson_dose(intensity: np.ndarray, dose_e_per_A2: float, pixel_size_A: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Electrons counted per pixel: Poisson with mean intensity × dose × pixel area.

    ``intensity`` is normalised so that vacuum is 1, so a vacuum pixel expects
    ``dose_e_per_A2 * pixel_size_A**2`` electrons.
    """
    if dose_e_per_A2 < 0:
        raise ValueError(f"dose must be >= 0 e/Å², got {dose_e_per_A2}")
    lam = np.clip(intensity, 0, None) * dose_e_per_A2 * pixel_size_A**2
    return rng.poisson(lam).astype(np.float32)


def xray_spikes(image: np.ndarray, rate_per_megapixel: float, brightness: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Add X-ray hits: single bright pixels of ``brightness`` × the image mean.

    Returns the image and the (row, col) positions hit.
    """
    n = rng.poisson(rate_per_megapixel * image.size / 1e6)
    rows = rng.integers(0, image.shape[0], n)
    cols = rng.integers(0, image.shape[1], n)
    out = image.copy()
    out[rows, cols] += brightness * float(image.mean()) * rng.uniform(0.5, 1.5, n)
    return out, np.column_stack([rows, cols])


@dataclass(frozen=True)
class Detector:
    """Camera and exposure for one image.

    Parameters
    ----------
    pixel_size_A : float
        Detector pixel size referred to the specimen, Å.
    dose_e_per_A2 : float
        Electron dose, e/Å²; ``inf`` gives the noise-free expectation.
    mtf_half_frequency, mtf_floor : float
        Lorentzian MTF (see :func:`mtf`); ``mtf_half_frequency = inf`` disables it.
    gain : float
        Counts per electron.
    read_noise : float
        Gaussian read noise, counts rms.
    gradient, gradient_angle_deg : float
        Illumination ramp amplitude (fraction) and direction.
    drift_A, drift_angle_deg : float
        Linear drift during the exposure, Å, and its direction.
    distortion_A, distortion_correlation_A : float
        rms and correlation length of a smooth geometric distortion, Å (labels follow it).
    xray_rate_per_megapixel, xray_brightness : float
        X-ray hits per 10⁶ pixels and their height relative to the mean.
    """

    pixel_size_A: float
    dose_e_per_A2: float = float("inf")
    mtf_half_frequency: float = float("inf")
    mtf_floor: float = 0.0
    gain: float = 1.0
    read_noise: float = 0.0
    gradient: float = 0.0
    gradient_angle_deg: float = 0.0
    drift_A: float = 0.0
    drift_angle_deg: float = 0.0
    distortion_A: float = 0.0
    distortion_correlation_A: float = 50.0
    xray_rate_per_megapixel: float = 0.0
    xray_brightness: float = 20.0

    def to_dict(self) -> dict:
        """JSON-able record (``inf`` written as a string)."""
        return {k: (str(v) if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}

    def distortion_field(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray | None:
        """The displacement field (pixels) this exposure applies, or None."""
        if self.distortion_A <= 0:
            return None
        return smooth_displacement(shape, self.distortion_A / self.pixel_size_A,
                                   self.distortion_correlation_A / self.pixel_size_A, rng)

    def record(self, intensity: np.ndarray, binning: int, rng: np.random.Generator,
               displacement: np.ndarray | None = None) -> np.ndarray:
        """Detector image (float32 counts) from intensity on a grid ``binning`` times finer."""
        if self.gradient:
            intensity = intensity * illumination_gradient(intensity.shape, self.gradient, self.gradient_angle_deg)
        image = bin_image(np.asarray(intensity, np.float64), binning)
        if self.drift_A > 0:
            image = apply_transfer(image, drift_transfer(image.shape, self.drift_A / self.pixel_size_A,
                                                         self.drift_angle_deg))
        if displacement is not None:
            image = warp(image, displacement)
        if np.isfinite(self.dose_e_per_A2):
            image = poisson_dose(image, self.dose_e_per_A2, self.pixel_size_A, rng).astype(np.float64)
        if np.isfinite(self.mtf_half_frequency):
            image = apply_transfer(image, mtf(image.shape, self.mtf_half_frequency, self.mtf_floor))
        image = image * self.gain
        if self.read_noise > 0:
            image = image + rng.normal(0.0, self.read_noise, image.shape)
        if self.xray_rate_per_megapixel > 0:
            image = xray_spikes(image, self.xray_rate_per_megapixel, self.xray_brightness, rng)[0]
        return image.astype(np.float32)
