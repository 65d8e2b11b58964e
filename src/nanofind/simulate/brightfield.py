"""Low-magnification bright-field TEM image model (1–50 Å per pixel): mass-thickness and phase contrast.

At these pixel sizes a particle is a blob of projected mass, not a set of atomic columns, so no
multislice is run. :func:`bright_field_image` takes projected thickness maps per material (Å) and
makes detector counts:

1. Exit wave ψ = A·e^{iφ}. The amplitude comes from electrons scattered outside the objective
   aperture, A = exp(−½ · c · Σ_m S_m ρ_m t_m), with S_m an effective cross-section per mass
   (:data:`MATERIALS`, in 1/(g/cm³ · Å)), ρ_m the density (g/cm³), t_m the thickness (Å) and c the
   recipe's ``aperture_contrast``. Diffraction contrast of crystalline particles enters as extra
   mass thickness (``bragg_thickness_A``). The phase is φ = σ_E · Σ_m V0_m (ρ_m/ρ°_m) t_m with
   the mean inner potential V0 (V) scaled to the density used and σ_E the interaction constant.
2. Fresnel propagation over the defocus with the objective's aberration phase
   χ(k) = −π λ Δf k² + (π/2) Cs λ³ k⁴ (Δf > 0 is underfocus, as in :mod:`nanofind.simulate.optics`),
   damped by the quasi-coherent envelopes of spatial coherence (Gaussian illumination cone of 1/e
   semi-angle α): E_s = exp(−(πα/λ)² (Cs λ³ k³ − Δf λ k)²), and of temporal coherence (focal spread
   Δ, 1σ): E_t = exp(−½ (π λ Δ k²)²). Image intensity |ψ_img|², vacuum = 1.
3. Camera: pixel integration (sinc(q_x) sinc(q_y) on the signal), an illumination ramp,
   electrons per pixel dose × pixel area × intensity drawn from Poisson statistics, a Gaussian
   scintillator blur of the counts (so the noise is correlated as in real cameras), gain, offset
   and Gaussian read noise. The camera MTF for the signal is sinc(q_x) sinc(q_y) exp(−2π²σ²q²)
   (q in cycles per pixel, σ the blur in pixels).

The maps are computed on a grid padded beyond the image (the caller draws the specimen there
too), so the periodic FFT wraps only the margin, which is cropped away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from nanofind.simulate.detector import poisson_dose
from nanofind.simulate.optics import ELECTRON_REST_ENERGY_EV, wavelength_A

#: The scintillator blur's Gaussian is cut at this many σ.
BLUR_TRUNCATE = 3.0


@dataclass(frozen=True)
class Material:
    """Bulk properties that set a material's bright-field contrast."""

    density_g_cm3: float
    scattering_per_g_cm3_A: float  #: S, effective cross-section per mass for scattering outside the aperture
    inner_potential_V: float  #: mean inner potential V0 at this density


#: S is effective and aperture-dependent: proportional to Σ Z^1.5 / Σ A of the formula (elastic
#: scattering per mass to large angles), scaled so that 10 nm of Au transmits 58 % of the beam
#: (exp(−2.8e-4 × 19.32 × 100)) and 20 nm of carbon film at 2.0 g/cm³ 96 %. A recipe's
#: ``aperture_contrast`` multiplies every S (small apertures or low voltage: above 1).
MATERIALS: dict[str, Material] = {
    "Au": Material(19.32, 2.80e-4, 30.0),
    "Pt": Material(21.45, 2.77e-4, 30.0),
    "Ag": Material(10.49, 2.35e-4, 21.0),
    "Pd": Material(12.02, 2.30e-4, 23.0),
    "Cu": Material(8.96, 1.93e-4, 20.0),
    "CeO2": Material(7.22, 2.22e-4, 19.0),
    "Fe3O4": Material(5.17, 1.66e-4, 18.0),
    "TiO2": Material(4.23, 1.46e-4, 17.0),
    "SiO2": Material(2.20, 1.28e-4, 11.0),
    "ZnO": Material(5.61, 1.80e-4, 15.9),
    "Al2O3": Material(3.95, 1.245e-4, 15.0),
    "polystyrene": Material(1.05, 0.947e-4, 8.0),  # C8H8 latex spheres, the faintest particles people image
    "C": Material(2.00, 0.96e-4, 9.0),
}

#: Chemical formulas of the materials whose names are not formulas.
FORMULAS: dict[str, str] = {"polystyrene": "C8H8"}


def interaction_constant(energy_eV: float) -> float:
    """σ_E in rad/(V·Å): phase shift per volt of potential and Å of path, relativistic (6.53e-4 at 300 keV)."""
    mc2 = ELECTRON_REST_ENERGY_EV
    return 2 * math.pi / (wavelength_A(energy_eV) * energy_eV) * (mc2 + energy_eV) / (2 * mc2 + energy_eV)


def _material(name: str) -> Material:
    try:
        return MATERIALS[name]
    except KeyError:
        raise ValueError(f"unknown material {name!r}; choose from {', '.join(MATERIALS)}") from None


def exit_wave(thickness_A: Mapping[str, np.ndarray], energy_eV: float, aperture_contrast: float = 1.0,
              density_g_cm3: Mapping[str, float] | None = None,
              bragg_thickness_A: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """ψ = exp(−½ c Σ S ρ (t + t_Bragg) + i σ_E Σ V0 (ρ/ρ°) t) from thickness maps per material (Å).

    ``density_g_cm3`` overrides the table's density of a material (its V0 scales with it).
    """
    density_g_cm3 = density_g_cm3 or {}
    bragg_thickness_A = bragg_thickness_A or {}
    sigma = interaction_constant(energy_eV)
    shape = next(iter(thickness_A.values())).shape
    attenuation = np.zeros(shape, np.float32)
    phase = np.zeros(shape, np.float32)
    for name, t in thickness_A.items():
        m = _material(name)
        rho = density_g_cm3.get(name, m.density_g_cm3)
        mass = t + bragg_thickness_A[name] if name in bragg_thickness_A else t
        attenuation += np.float32(aperture_contrast * m.scattering_per_g_cm3_A * rho) * mass
        phase += np.float32(sigma * m.inner_potential_V * rho / m.density_g_cm3) * t
    amplitude = np.exp(-0.5 * attenuation)
    wave = np.empty(shape, np.complex64)
    wave.real, wave.imag = amplitude * np.cos(phase), amplitude * np.sin(phase)
    return wave


@dataclass(frozen=True)
class BrightFieldOptics:
    """Objective-lens settings of one image (lengths in Å; 1 µm = 1e4 Å, 1 mm = 1e7 Å)."""

    energy_eV: float = 200e3
    defocus_A: float = 0.0  #: positive = underfocus (bright Fresnel fringe outside a particle)
    Cs_A: float = 1.2e7
    illumination_semiangle_mrad: float = 0.1  #: 1/e semi-angle of the Gaussian illumination cone
    focal_spread_A: float = 50.0  #: 1σ defocus spread (chromatic)
    aperture_contrast: float = 1.0  #: multiplies every material's scattering cross-section

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Camera:
    """Exposure and camera of one image."""

    dose_e_per_A2: float = 1.0  #: math.inf: noise-free expected counts per unit dose
    blur_px: float = 0.5  #: rms of the Gaussian scintillator blur, pixels (blurs the shot noise too)
    gain: float = 1.0  #: counts per electron
    offset: float = 0.0  #: counts added to every pixel
    read_noise: float = 0.0  #: Gaussian, counts rms
    gradient: float = 0.0  #: illumination ramp: 1 ± gradient across the image
    gradient_angle_deg: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _k_grid(shape: tuple[int, int], pixel_size_A: float) -> np.ndarray:
    """|k| in 1/Å on the FFT grid."""
    ky, kx = (np.fft.fftfreq(n, pixel_size_A).astype(np.float32) for n in shape)
    return np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def transfer_function(shape: tuple[int, int], pixel_size_A: float, optics: BrightFieldOptics) -> np.ndarray:
    """exp(−iχ(k)) · E_s(k) · E_t(k) on the FFT grid (complex64)."""
    lam = wavelength_A(optics.energy_eV)
    k = _k_grid(shape, pixel_size_A)
    k2 = k**2
    chi = (-math.pi * lam * optics.defocus_A + 0.5 * math.pi * optics.Cs_A * lam**3 * k2) * k2
    alpha = optics.illumination_semiangle_mrad * 1e-3
    spatial = (math.pi * alpha / lam) ** 2 * k2 * (optics.Cs_A * lam**3 * k2 - optics.defocus_A * lam) ** 2
    temporal = 0.5 * (math.pi * lam * optics.focal_spread_A) ** 2 * k2**2
    envelope = np.exp(-(spatial + temporal))
    transfer = np.empty(shape, np.complex64)
    transfer.real, transfer.imag = envelope * np.cos(chi), -envelope * np.sin(chi)
    return transfer


def propagate(wave: np.ndarray, pixel_size_A: float, optics: BrightFieldOptics) -> np.ndarray:
    """Image intensity |F⁻¹[F[ψ] · exp(−iχ) E_s E_t]|² (float32; a uniform vacuum wave gives 1)."""
    from scipy import fft

    image_wave = fft.ifft2(fft.fft2(wave, workers=1) * transfer_function(wave.shape, pixel_size_A, optics),
                           workers=1)
    return (image_wave.real**2 + image_wave.imag**2).astype(np.float32)


def pixel_integration(intensity: np.ndarray) -> np.ndarray:
    """Average of the intensity over each pixel's square: the spectrum times sinc(q_x) sinc(q_y)."""
    from scipy import fft

    qy, qx = np.fft.fftfreq(intensity.shape[0]), np.fft.rfftfreq(intensity.shape[1])
    spectrum = fft.rfft2(intensity, workers=1) * (np.sinc(qy)[:, None] * np.sinc(qx)[None, :]).astype(np.float32)
    return fft.irfft2(spectrum, s=intensity.shape, workers=1).astype(np.float32)


def record(intensity: np.ndarray, pixel_size_A: float, camera: Camera, rng: np.random.Generator,
           crop: tuple[slice, slice] | None = None) -> np.ndarray:
    """Camera counts (float32) from intensity (vacuum = 1): ramp, Poisson electrons, blur, gain, offset, read noise.

    ``crop`` is the image inside the padded grid; the ramp runs across it and the result is cropped to it.
    """
    from scipy.ndimage import gaussian_filter

    crop = crop or (slice(0, intensity.shape[0]), slice(0, intensity.shape[1]))
    # electrons are counted only where the blur can reach the image from
    border = math.ceil(BLUR_TRUNCATE * camera.blur_px) + 1
    r0, c0 = max(0, crop[0].start - border), max(0, crop[1].start - border)
    sub = intensity[r0:crop[0].stop + border, c0:crop[1].stop + border]
    rows, cols = (s.stop - s.start for s in crop)
    y = (np.arange(sub.shape[0]) + r0 - crop[0].start - (rows - 1) / 2)[:, None] / rows
    x = (np.arange(sub.shape[1]) + c0 - crop[1].start - (cols - 1) / 2)[None, :] / cols
    a = math.radians(camera.gradient_angle_deg)
    lit = sub * (1 + 2 * camera.gradient * (x * math.cos(a) + y * math.sin(a))).astype(np.float32)
    if math.isinf(camera.dose_e_per_A2):
        electrons = lit
    else:
        electrons = poisson_dose(lit, camera.dose_e_per_A2, pixel_size_A, rng)
    if camera.blur_px > 0:
        electrons = gaussian_filter(electrons, camera.blur_px, mode="nearest", truncate=BLUR_TRUNCATE)
    inner = (slice(crop[0].start - r0, crop[0].stop - r0), slice(crop[1].start - c0, crop[1].stop - c0))
    counts = camera.gain * electrons[inner] + camera.offset
    if camera.read_noise > 0:
        counts = counts + rng.normal(0, camera.read_noise, counts.shape)
    return counts.astype(np.float32)


def bright_field_image(thickness_A: Mapping[str, np.ndarray], pixel_size_A: float, optics: BrightFieldOptics,
                       camera: Camera, rng: np.random.Generator, *, density_g_cm3: Mapping[str, float] | None = None,
                       bragg_thickness_A: Mapping[str, np.ndarray] | None = None,
                       crop: tuple[slice, slice] | None = None) -> np.ndarray:
    """A bright-field micrograph (float32 counts) from projected thickness per material.

    Parameters
    ----------
    thickness_A : mapping of material name to array
        Projected thickness (Å) of each material on the padded grid (rows along y); names from
        :data:`MATERIALS`. An empty mapping is vacuum.
    pixel_size_A : float
        Pixel size, Å.
    optics : BrightFieldOptics
        Energy, defocus (positive = underfocus), Cs, coherence and the aperture contrast factor.
    camera : Camera
        Dose (e/Å²), blur, gain, offset, read noise and illumination ramp.
    rng : numpy.random.Generator
        Draws the shot and read noise.
    density_g_cm3 : mapping, optional
        Densities replacing the table's (e.g. the carbon film's).
    bragg_thickness_A : mapping, optional
        Extra mass thickness per material (Å) for diffraction contrast: scatters out of the
        aperture, adds no phase.
    crop : (slice, slice), optional
        The image inside the padded grid (default: all of it).

    Returns
    -------
    numpy.ndarray
        float32 counts: gain × electrons + offset + read noise; a vacuum pixel expects
        gain × dose × pixel_size_A² + offset.
    """
    if not thickness_A:
        raise ValueError("thickness_A needs at least one material map (use C with zeros for vacuum)")
    wave = exit_wave(thickness_A, optics.energy_eV, optics.aperture_contrast, density_g_cm3, bragg_thickness_A)
    intensity = pixel_integration(propagate(wave, pixel_size_A, optics))
    return record(intensity, pixel_size_A, camera, rng, crop)
